package localcluster

import (
	"context"
	"fmt"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/kubernetes/pkg/controller/deployment"
	"k8s.io/kubernetes/pkg/controller/replicaset"
)

// StartWorkloadControllers runs upstream's Deployment and ReplicaSet
// controllers (what kube-controller-manager runs for them) in this process
// until ctx ends, under their own user agent, so that a test sees what a
// user of a Deployment sees: pods created by the ReplicaSet controller, and
// its FailedCreate Events when the API server refuses one. The test cluster
// runs no controller-manager; only these two are needed.
func (c *Cluster) StartWorkloadControllers(ctx context.Context) error {
	config := rest.CopyConfig(c.Config)
	config.UserAgent = "switchyard-test-workload-controllers"
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		return err
	}
	factory := informers.NewSharedInformerFactory(client, 0)
	apps, pods := factory.Apps().V1(), factory.Core().V1().Pods()
	deployments, err := deployment.NewDeploymentController(ctx, apps.Deployments(), apps.ReplicaSets(), pods, client)
	if err != nil {
		return fmt.Errorf("deployment controller: %w", err)
	}
	replicaSets := replicaset.NewReplicaSetController(ctx, apps.ReplicaSets(), pods, client, replicaset.BurstReplicas)
	factory.Start(ctx.Done())
	go deployments.Run(ctx, 1)
	go replicaSets.Run(ctx, 1)
	return nil
}
