// Package lease runs work while this process holds a coordination.k8s.io
// Lease, the way kube-scheduler and kube-controller-manager replicas take
// turns: the holder works, the others stand by and take over when its
// lease expires. Unlike client-go's elector alone, the lease is released
// only once the work has returned, so a successor never overlaps work the
// previous holder still has in flight (gate removals, binds).
package lease

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"
)

// Config names the Lease and this holder.
type Config struct {
	// Namespace and Name of the Lease.
	Namespace, Name string
	// Identity names this process in the Lease; host name and start time
	// when empty. Use the pod name.
	Identity string
	// LeaseDuration, RenewDeadline and RetryPeriod as in client-go; 15s,
	// 10s and 2s when zero.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// OnStoppedLeading, when set, runs once the work has returned after
	// the lease ended.
	OnStoppedLeading func()
}

// ErrLost is what Run returns when this process led and the lease ended
// while ctx was still alive: it could not renew in time, and another
// process may be leading.
var ErrLost = errors.New("lost the lease")

// Run waits until this process holds the lease, then runs lead with a
// context that ends when ctx ends or the lease is lost, keeps renewing the
// lease until lead returns, and releases it. It returns after one term:
// nil when ctx ended (or ended before the lease was won), ErrLost when the
// lease was lost while leading.
func Run(ctx context.Context, client kubernetes.Interface, cfg Config, lead func(context.Context)) error {
	logger := klog.FromContext(ctx)
	if cfg.Identity == "" {
		host, _ := os.Hostname()
		cfg.Identity = fmt.Sprintf("%s_%d", host, time.Now().UnixNano())
	}
	orDefault := func(d, def time.Duration) time.Duration {
		if d <= 0 {
			return def
		}
		return d
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: cfg.Namespace, Name: cfg.Name},
		Client:     client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: cfg.Identity},
	}
	// The elector releases the lease as soon as its own context ends,
	// without waiting for OnStartedLeading to return. So it gets a context
	// of its own, ended only once lead has returned: until then the lease
	// stays renewed and no successor starts.
	electorCtx, endElection := context.WithCancel(context.WithoutCancel(ctx))
	defer endElection()
	var (
		mu       sync.Mutex
		stopping bool
		led      bool
		leading  sync.WaitGroup
	)
	go func() {
		select {
		case <-ctx.Done():
		case <-electorCtx.Done():
			return
		}
		mu.Lock()
		stopping = true
		mu.Unlock()
		leading.Wait()
		endElection()
	}()
	elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   orDefault(cfg.LeaseDuration, 15*time.Second),
		RenewDeadline:   orDefault(cfg.RenewDeadline, 10*time.Second),
		RetryPeriod:     orDefault(cfg.RetryPeriod, 2*time.Second),
		ReleaseOnCancel: true,
		Name:            cfg.Name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(leaseCtx context.Context) {
				mu.Lock()
				if stopping {
					mu.Unlock()
					return
				}
				led = true
				leading.Add(1)
				mu.Unlock()
				defer leading.Done()
				logger.Info("Leading", "lease", klog.KRef(cfg.Namespace, cfg.Name), "identity", cfg.Identity)
				// Stop when the lease is lost or when asked to stop.
				runCtx, cancel := context.WithCancel(leaseCtx)
				defer cancel()
				defer context.AfterFunc(ctx, cancel)()
				lead(runCtx)
			},
			OnStoppedLeading: func() {
				logger.Info("Stopped leading", "lease", klog.KRef(cfg.Namespace, cfg.Name), "identity", cfg.Identity)
				if cfg.OnStoppedLeading != nil {
					cfg.OnStoppedLeading()
				}
			},
			OnNewLeader: func(identity string) {
				if identity != cfg.Identity {
					logger.Info("Standing by", "lease", klog.KRef(cfg.Namespace, cfg.Name), "leader", identity)
				}
			},
		},
	})
	if err != nil {
		return err
	}
	elector.Run(electorCtx)
	// The elector starts lead in a goroutine and returns when the lease
	// is lost without waiting for it: no term starts now, and this one
	// ends before Run does.
	mu.Lock()
	stopping = true
	mu.Unlock()
	leading.Wait()
	mu.Lock()
	defer mu.Unlock()
	if led && ctx.Err() == nil {
		return ErrLost
	}
	return nil
}
