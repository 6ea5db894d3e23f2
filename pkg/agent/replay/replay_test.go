package replay

import (
	"testing"
)

// TestReplayTable prints the evaluation table (make bench shows it) and
// checks what the replay is for: on every trace the default policy
// throttles less and over-provisions less CPU than Serverless Containers'
// defaults, and is never OOM-killed, since every trace fits the node.
// The replay is deterministic (simulated clock), so these are not timing
// assertions.
func TestReplayTable(t *testing.T) {
	results := Table()
	t.Logf("\n%s", Format(results))
	by := map[[2]string]Result{}
	for _, r := range results {
		by[[2]string{r.Trace, r.Policy}] = r
	}
	for _, tr := range Traces() {
		anchor, def := by[[2]string{tr.Name, "serverless-containers"}], by[[2]string{tr.Name, "default"}]
		if def.ThrottledCoreSeconds > anchor.ThrottledCoreSeconds {
			t.Errorf("%s: default throttles %.1f core·s, Serverless Containers %.1f", tr.Name, def.ThrottledCoreSeconds, anchor.ThrottledCoreSeconds)
		}
		if def.OverCoreSeconds > anchor.OverCoreSeconds {
			t.Errorf("%s: default over-provisions %.1f core·s, Serverless Containers %.1f", tr.Name, def.OverCoreSeconds, anchor.OverCoreSeconds)
		}
		if def.OOMKills > 0 {
			t.Errorf("%s: default was OOM-killed %d times", tr.Name, def.OOMKills)
		}
	}
}
