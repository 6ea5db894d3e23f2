package reconcile

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// TestLoop checks the loop's contract: a burst of adds is one sync, an
// error is retried, requeueAfter brings the key back, and Run returns only
// after the sync in progress finished.
func TestLoop(t *testing.T) {
	var mu sync.Mutex
	calls := map[string]int{}
	inSync := make(chan struct{})
	release := make(chan struct{})
	loop := NewWithRateLimiter("test", func(ctx context.Context, key string) (time.Duration, error) {
		mu.Lock()
		calls[key]++
		n := calls[key]
		mu.Unlock()
		switch {
		case key == "fails" && n < 3:
			return 0, errors.New("not yet")
		case key == "again" && n < 2:
			return 10 * time.Millisecond, nil
		case key == "slow":
			close(inSync)
			<-release
		}
		return 0, nil
	}, workqueue.NewTypedItemExponentialFailureRateLimiter[string](time.Millisecond, 10*time.Millisecond))
	for range 5 {
		loop.Add("burst")
	}
	loop.Add("fails")
	loop.Add("again")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { loop.Run(ctx, 2); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		ok := calls["fails"] == 3 && calls["again"] == 2 && calls["burst"] >= 1
		mu.Unlock()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("calls %v: want fails retried to 3, again requeued to 2", calls)
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	if calls["burst"] != 1 {
		t.Errorf("five adds of a waiting key synced %d times, want once", calls["burst"])
	}
	mu.Unlock()
	loop.Add("slow")
	<-inSync
	cancel()
	select {
	case <-done:
		t.Fatal("Run returned while a sync was in progress")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after the sync finished")
	}
}

func TestObject(t *testing.T) {
	type thing struct{ name string }
	if got, ok := Object[*thing](&thing{"a"}); !ok || got.name != "a" {
		t.Errorf("a plain object: %v %v", got, ok)
	}
	if got, ok := Object[*thing](cache.DeletedFinalStateUnknown{Key: "k", Obj: &thing{"b"}}); !ok || got.name != "b" {
		t.Errorf("a tombstone: %v %v", got, ok)
	}
	if _, ok := Object[*thing]("other"); ok {
		t.Error("another type must not pass")
	}
}
