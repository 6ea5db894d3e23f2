// Package nodeusage is the node usage report the agent publishes and the
// UsageAware score plugin reads: the CPU and memory its node's pods
// measurably use, averaged over a window, as a node annotation updated at a
// modest rate.
package nodeusage

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
)

// Report is one measurement.
type Report struct {
	// MilliCPU used by all pods of the node, on average over Window.
	MilliCPU int64 `json:"milliCPU"`
	// MemoryBytes in use by all pods of the node at the end of Window.
	MemoryBytes int64 `json:"memoryBytes"`
	// Window the CPU average covers.
	Window time.Duration `json:"window"`
	// At is when the measurement ended.
	At time.Time `json:"at"`
}

// Encode renders the annotation value.
func (r Report) Encode() string {
	data, _ := json.Marshal(r)
	return string(data)
}

// Decode reads an annotation value; an error means the report is unusable.
func Decode(value string) (Report, error) {
	var r Report
	if err := json.Unmarshal([]byte(value), &r); err != nil {
		return r, fmt.Errorf("annotation %s is not a usage report: %w", v1alpha1.MeasuredUsageAnnotation, err)
	}
	if r.MilliCPU < 0 || r.MemoryBytes < 0 || r.At.IsZero() {
		return r, fmt.Errorf("annotation %s has negative usage or no time", v1alpha1.MeasuredUsageAnnotation)
	}
	return r, nil
}
