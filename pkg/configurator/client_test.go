package configurator

import (
	"context"
	"fmt"
	"testing"
)

// TestApplyNeverGoesBack delivers versions out of order and twice: the
// replica applies each newer version once, in order, and never an older one.
func TestApplyNeverGoesBack(t *testing.T) {
	var seen []int64
	c, err := NewClient(ClientOptions{URL: "http://x", Service: "s", Pod: "p", Address: "http://y",
		OnChange: func(_ context.Context, cfg map[string]string, v int64) error {
			if cfg["v"] != fmt.Sprint(v) {
				t.Errorf("callback for version %d carries v=%s", v, cfg["v"])
			}
			seen = append(seen, v)
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	snap := func(v int64) Change {
		return Change{Snapshot: Snapshot{Service: "s", Version: v, Values: map[string]string{"v": fmt.Sprint(v)}}}
	}
	for _, v := range []int64{2, 1, 2, 4, 3, 4, 1, 5} {
		c.Apply(context.Background(), snap(v))
	}
	if fmt.Sprint(seen) != "[2 4 5]" {
		t.Errorf("applied %v, want [2 4 5]", seen)
	}
	if c.AppliedVersion() != 5 || c.Config()["v"] != "5" {
		t.Errorf("ended at version %d with %v, want 5", c.AppliedVersion(), c.Config())
	}
}

// TestApplyOnlyWhatIsMeantForThisPod: a change for another pod number
// advances the version and leaves this replica's configuration alone.
func TestApplyOnlyWhatIsMeantForThisPod(t *testing.T) {
	calls := 0
	c, _ := NewClient(ClientOptions{URL: "http://x", Service: "s", Pod: "p", Address: "http://y",
		OnChange: func(context.Context, map[string]string, int64) error { calls++; return nil }})
	c.podNumber, c.numbered = 1, true
	three := 3
	c.Apply(context.Background(), Change{Target: &three, Snapshot: Snapshot{Service: "s", Version: 1, Pods: map[string]map[string]string{"3": {"mode": "canary"}}}})
	if calls != 0 || c.AppliedVersion() != 1 || len(c.Config()) != 0 {
		t.Errorf("a change for pod 3 reached pod 1: %d calls, version %d, config %v", calls, c.AppliedVersion(), c.Config())
	}
	c.Apply(context.Background(), Change{Snapshot: Snapshot{Service: "s", Version: 2, Values: map[string]string{"a": "b"}, Pods: map[string]map[string]string{"1": {"a": "c"}}}})
	if calls != 1 || c.Config()["a"] != "c" {
		t.Errorf("pod 1's own value should override the service's: %v after %d calls", c.Config(), calls)
	}
}
