package server

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
	"github.com/switchyard-sched/switchyard/pkg/configurator"
)

// snapshotKey is the ConfigMap key of the snapshot JSON.
const snapshotKey = "snapshot.json"

// Store keeps the last value of every key in the Kubernetes API, one
// ConfigMap per service, so a restarted configurator, or one on another
// node, starts from it. Writes use the ConfigMap's resourceVersion, so two
// configurators can never overwrite each other's changes silently.
type Store struct {
	client    kubernetes.Interface
	namespace string
}

// NewStore keeps configuration in ConfigMaps of namespace.
func NewStore(client kubernetes.Interface, namespace string) *Store {
	return &Store{client: client, namespace: namespace}
}

func configMapName(service string) string { return "switchyard-config-" + service }

// Load reads every service's snapshot.
func (s *Store) Load(ctx context.Context) (map[string]configurator.Snapshot, error) {
	list, err := s.client.CoreV1().ConfigMaps(s.namespace).List(ctx, metav1.ListOptions{LabelSelector: v1alpha1.ConfiguratorServiceLabel})
	if err != nil {
		return nil, fmt.Errorf("loading configuration from ConfigMaps in %s: %w", s.namespace, err)
	}
	out := map[string]configurator.Snapshot{}
	for _, cm := range list.Items {
		var snap configurator.Snapshot
		if err := json.Unmarshal([]byte(cm.Data[snapshotKey]), &snap); err != nil {
			return nil, fmt.Errorf("ConfigMap %s/%s: %s is not a snapshot: %w", cm.Namespace, cm.Name, snapshotKey, err)
		}
		out[cm.Labels[v1alpha1.ConfiguratorServiceLabel]] = snap
	}
	return out, nil
}

// Save writes the snapshot if the stored one is older; it fails, and
// nothing changes, when another writer got there first.
func (s *Store) Save(ctx context.Context, snap configurator.Snapshot) error {
	data, err := json.Marshal(snap)
	if err != nil {
		return err
	}
	name := configMapName(snap.Service)
	cms := s.client.CoreV1().ConfigMaps(s.namespace)
	cm, err := cms.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = cms.Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.namespace, Labels: map[string]string{
				v1alpha1.ConfiguratorServiceLabel: snap.Service, "app.kubernetes.io/managed-by": "switchyard-configurator",
			}},
			Data: map[string]string{snapshotKey: string(data)},
		}, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	var stored configurator.Snapshot
	if json.Unmarshal([]byte(cm.Data[snapshotKey]), &stored) == nil && stored.Version >= snap.Version {
		return fmt.Errorf("stored configuration of %s is at version %d, not older than %d", snap.Service, stored.Version, snap.Version)
	}
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	cm.Data[snapshotKey] = string(data)
	_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
	return err
}
