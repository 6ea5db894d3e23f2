package usageaware

import (
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/switchyard-sched/switchyard/pkg/apis/config"
	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
	"github.com/switchyard-sched/switchyard/pkg/nodeusage"
)

func TestScore(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	pl := &UsageAware{args: &config.UsageAwareArgs{MaxReportAge: metav1.Duration{Duration: time.Minute}, CPUWeight: 1, MemoryWeight: 1}, now: func() time.Time { return now }}
	node := func(annotation string) *v1.Node {
		n := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", Annotations: map[string]string{}}}
		if annotation != "" {
			n.Annotations[v1alpha1.MeasuredUsageAnnotation] = annotation
		}
		n.Status.Allocatable = v1.ResourceList{v1.ResourceCPU: resource.MustParse("4"), v1.ResourceMemory: resource.MustParse("8Gi")}
		return n
	}
	report := func(milliCPU, memory int64, at time.Time) string {
		return nodeusage.Report{MilliCPU: milliCPU, MemoryBytes: memory, Window: 10 * time.Second, At: at}.Encode()
	}
	for _, tc := range []struct {
		name       string
		annotation string
		want       int64
	}{
		{"no report", "", 50},
		{"malformed report", "{cpu: lots", 50},
		{"stale report", report(0, 0, now.Add(-2*time.Minute)), 50},
		{"idle", report(0, 0, now), 100},
		{"a quarter used", report(1000, 2<<30, now), 75},
		{"over allocatable", report(8000, 16<<30, now), 0},
	} {
		if got := pl.score(node(tc.annotation)); got != tc.want {
			t.Errorf("%s: score %d, want %d", tc.name, got, tc.want)
		}
	}
}
