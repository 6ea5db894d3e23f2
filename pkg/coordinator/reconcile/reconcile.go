// Package reconcile runs the coordinator's controllers the way upstream
// controllers run: informer event handlers only enqueue keys into a typed,
// rate-limited workqueue; workers sync one key at a time; a key whose sync
// fails is retried with backoff, one that succeeds is forgotten; work that
// is due later is added with AddAfter. Routing, admission, Queue status and
// dispatch all run on it, so there is one loop to get right.
package reconcile

import (
	"context"
	"fmt"
	"sync"
	"time"

	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
)

// SyncFunc brings the world in line for one key. A positive requeueAfter
// asks to look at the key again after that long even if nothing changes
// (a rate limit refilling, a deadline passing); an error retries with backoff.
type SyncFunc[K comparable] func(ctx context.Context, key K) (requeueAfter time.Duration, err error)

// Loop is a workqueue with its workers.
type Loop[K comparable] struct {
	name  string
	queue workqueue.TypedRateLimitingInterface[K]
	sync  SyncFunc[K]
}

// New creates a loop named name (the workqueue's metrics name) that syncs
// keys with sync, retrying failures with the default controller backoff.
func New[K comparable](name string, sync SyncFunc[K]) *Loop[K] {
	return NewWithRateLimiter(name, sync, workqueue.DefaultTypedControllerRateLimiter[K]())
}

// NewWithRateLimiter is New with a chosen retry rate limiter.
func NewWithRateLimiter[K comparable](name string, sync SyncFunc[K], limiter workqueue.TypedRateLimiter[K]) *Loop[K] {
	return &Loop[K]{
		name:  name,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(limiter, workqueue.TypedRateLimitingQueueConfig[K]{Name: name}),
		sync:  sync,
	}
}

// Add asks for key to be synced as soon as a worker is free. Adding a key
// that is already waiting does nothing: one sync serves a burst of events.
func (l *Loop[K]) Add(key K) { l.queue.Add(key) }

// AddAfter asks for key to be synced once d has passed. A key already
// waiting keeps the earlier of the two times.
func (l *Loop[K]) AddAfter(key K, d time.Duration) { l.queue.AddAfter(key, d) }

// Len is the number of keys waiting for a worker.
func (l *Loop[K]) Len() int { return l.queue.Len() }

// Run syncs keys with workers goroutines until ctx ends, then lets the
// keys being synced finish before it returns.
func (l *Loop[K]) Run(ctx context.Context, workers int) {
	defer utilruntime.HandleCrashWithContext(ctx)
	logger := klog.FromContext(ctx).WithValues("controller", l.name)
	ctx = klog.NewContext(ctx, logger)
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for l.processNextWorkItem(ctx) {
			}
		}()
	}
	<-ctx.Done()
	l.queue.ShutDownWithDrain()
	wg.Wait()
}

// processNextWorkItem syncs one key; it returns false once the queue is
// shut down.
func (l *Loop[K]) processNextWorkItem(ctx context.Context) bool {
	key, quit := l.queue.Get()
	if quit {
		return false
	}
	defer l.queue.Done(key)
	requeueAfter, err := l.sync(ctx, key)
	if err != nil {
		utilruntime.HandleErrorWithContext(ctx, err, "Sync failed; retrying with backoff", "key", fmt.Sprint(key))
		l.queue.AddRateLimited(key)
		return true
	}
	l.queue.Forget(key)
	if requeueAfter > 0 {
		l.queue.AddAfter(key, requeueAfter)
	}
	return true
}

// Object returns the T an informer event handler was given, looking
// through the tombstone (cache.DeletedFinalStateUnknown) a delete may carry.
func Object[T any](obj any) (T, bool) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	t, ok := obj.(T)
	return t, ok
}
