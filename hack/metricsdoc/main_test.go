package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReferenceIsCurrent fails when a component registers a metric that
// docs/metrics.md does not document, or documents it differently.
func TestReferenceIsCurrent(t *testing.T) {
	cs, err := components()
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile(filepath.Join("..", "..", "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, c := range cs {
		if len(c.Metrics) == 0 {
			t.Errorf("%s registers no metrics", c.Name)
		}
		for _, m := range c.Metrics {
			total++
			if !strings.HasPrefix(m.Name, "switchyard_") && !strings.HasPrefix(m.Name, "workqueue_") {
				t.Errorf("%s: metric %s is not named switchyard_*", c.Name, m.Name)
			}
			if !bytes.Contains(committed, []byte("| `"+m.Name+"` |")) {
				t.Errorf("%s registers %s, which docs/metrics.md does not document", c.Name, m.Name)
			}
			if m.Help == "" {
				t.Errorf("%s: metric %s has no help text", c.Name, m.Name)
			}
		}
	}
	if !bytes.Equal(committed, markdown(cs)) {
		t.Errorf("docs/metrics.md is stale: run hack/update-codegen.sh (or go run ./hack/metricsdoc > docs/metrics.md)")
	}
	t.Logf("%d metrics of %d components documented", total, len(cs))
}
