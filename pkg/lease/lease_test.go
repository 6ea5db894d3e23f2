package lease

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/klog/v2/ktesting"
)

// TestRunDrainsBeforeReleasing: the lease stays held, and renewed, until
// the work has returned, and a second holder starts only after the first
// has released it.
func TestRunDrainsBeforeReleasing(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	client := fake.NewClientset()
	cfg := Config{Namespace: "ns", Name: "work", LeaseDuration: 2 * time.Second, RenewDeadline: time.Second, RetryPeriod: 100 * time.Millisecond}
	var working atomic.Int32
	var overlapped atomic.Bool
	work := func(ctx context.Context) {
		if working.Add(1) > 1 {
			overlapped.Store(true)
		}
		<-ctx.Done()
		time.Sleep(300 * time.Millisecond) // draining in-flight work
		working.Add(-1)
	}
	firstCtx, stopFirst := context.WithCancel(ctx)
	first := cfg
	first.Identity = "first"
	firstDone := make(chan error, 1)
	go func() { firstDone <- Run(firstCtx, client, first, work) }()
	waitHolder(ctx, t, client, "first")
	second := cfg
	second.Identity = "second"
	secondCtx, stopSecond := context.WithCancel(ctx)
	defer stopSecond()
	secondDone := make(chan error, 1)
	go func() { secondDone <- Run(secondCtx, client, second, work) }()
	time.Sleep(500 * time.Millisecond)
	stopFirst()
	if err := <-firstDone; err != nil {
		t.Errorf("first holder, stopped: %v, want nil", err)
	}
	if working.Load() != 0 {
		t.Errorf("Run returned while its work was still running")
	}
	waitHolder(ctx, t, client, "second")
	stopSecond()
	if err := <-secondDone; err != nil {
		t.Errorf("second holder, stopped: %v, want nil", err)
	}
	if overlapped.Load() {
		t.Error("the second holder worked while the first was still draining")
	}
}

func waitHolder(ctx context.Context, t *testing.T, client *fake.Clientset, identity string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		l, err := client.CoordinationV1().Leases("ns").Get(ctx, "work", metav1.GetOptions{})
		if err == nil && l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity == identity {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never held the lease", identity)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
