package configurator

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

func newTestClient(t *testing.T, url string, seen *[]int64) *Client {
	t.Helper()
	c, err := NewClient(ClientOptions{URL: url, Service: "s", Pod: "p", Address: "http://y", Token: "t",
		OnChange: func(_ context.Context, cfg map[string]string, v int64) error {
			if cfg["v"] != fmt.Sprint(v) {
				t.Errorf("callback for version %d carries v=%s", v, cfg["v"])
			}
			*seen = append(*seen, v)
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func snapshot(epoch string, v int64) Snapshot {
	return Snapshot{Service: "s", Epoch: epoch, Version: v, Values: map[string]string{"v": fmt.Sprint(v)}}
}

// TestAdoptNeverGoesBack delivers snapshots out of order and twice: the
// replica applies each newer version once, in order, never an older one;
// a new epoch is adopted whatever its version.
func TestAdoptNeverGoesBack(t *testing.T) {
	var seen []int64
	c := newTestClient(t, "http://x", &seen)
	for _, v := range []int64{2, 1, 2, 4, 3, 4, 1, 5} {
		c.Adopt(context.Background(), snapshot("a", v))
	}
	if fmt.Sprint(seen) != "[2 4 5]" {
		t.Errorf("applied %v, want [2 4 5]", seen)
	}
	c.Adopt(context.Background(), snapshot("b", 1))
	if epoch, v := c.Applied(); epoch != "b" || v != 1 || c.Config()["v"] != "1" {
		t.Errorf("after a new epoch: %s/%d %v, want b/1", epoch, v, c.Config())
	}
	// The registration answer of a service that had no configuration,
	// processed after the first push: it must not take the replica back.
	c.Adopt(context.Background(), Snapshot{Service: "s"})
	if epoch, v := c.Applied(); epoch != "b" || v != 1 {
		t.Errorf("after a late unconfigured snapshot: %s/%d, want b/1 kept", epoch, v)
	}
}

// TestApplyOnlyWhatIsMeantForThisPod: a change for another pod number
// advances the version and leaves this replica's configuration alone.
func TestApplyOnlyWhatIsMeantForThisPod(t *testing.T) {
	calls := 0
	c, _ := NewClient(ClientOptions{URL: "http://x", Service: "s", Pod: "p", Address: "http://y",
		OnChange: func(context.Context, map[string]string, int64) error { calls++; return nil }})
	c.podNumber, c.numbered = 1, true
	c.Adopt(context.Background(), Snapshot{Service: "s", Version: 1, Pods: map[string]map[string]string{"3": {"mode": "canary"}}})
	if calls != 0 || c.AppliedVersion() != 1 || len(c.Config()) != 0 {
		t.Errorf("a change for pod 3 reached pod 1: %d calls, version %d, config %v", calls, c.AppliedVersion(), c.Config())
	}
	c.Adopt(context.Background(), Snapshot{Service: "s", Version: 2, Values: map[string]string{"a": "b"}, Pods: map[string]map[string]string{"1": {"a": "c"}}})
	if calls != 1 || c.Config()["a"] != "c" {
		t.Errorf("pod 1's own value should override the service's: %v after %d calls", c.Config(), calls)
	}
}

// TestReceive: what a pushed change does, by signature, service, epoch and
// version. The configurator's GET answers "a"/7 to every pull.
func TestReceive(t *testing.T) {
	key, _ := NewPushKey()
	otherKey, _ := NewPushKey()
	var pulls atomic.Int32
	configurator := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != ServicesPath+"/s/config" || r.Header.Get("Authorization") != "Bearer t" {
			http.Error(w, "unexpected "+r.URL.Path, http.StatusBadRequest)
			return
		}
		pulls.Add(1)
		_ = json.NewEncoder(w).Encode(snapshot("a", 7))
	}))
	defer configurator.Close()
	sign := func(k []byte, snap Snapshot) SignedChange { return signFor(0, k, snap) }
	for _, tc := range []struct {
		name        string
		change      SignedChange
		wantErr     error
		wantVersion int64
		wantPulls   int32
	}{
		{"next version applied as pushed", sign(key, snapshot("a", 3)), nil, 3, 0},
		{"old version ignored", sign(key, snapshot("a", 1)), nil, 2, 0},
		{"same version ignored", sign(key, snapshot("a", 2)), nil, 2, 0},
		{"gap pulls", sign(key, snapshot("a", 5)), nil, 7, 1},
		{"huge version pulls, never pins", sign(key, snapshot("a", math.MaxInt64)), nil, 7, 1},
		{"new epoch pulls", sign(key, snapshot("b", 1)), nil, 7, 1},
		{"signed by another key", sign(otherKey, snapshot("a", 3)), ErrBadSignature, 2, 0},
		{"signed for another pod number", signFor(1, key, snapshot("a", 3)), ErrBadSignature, 2, 0},
		{"unsigned", SignedChange{Change: mustJSON(Change{Snapshot: snapshot("a", 3)})}, ErrBadSignature, 2, 0},
		{"signature of other bytes", SignedChange{Change: mustJSON(Change{Snapshot: snapshot("a", 3)}), MACs: sign(key, snapshot("a", 4)).MACs}, ErrBadSignature, 2, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var seen []int64
			c := newTestClient(t, configurator.URL, &seen)
			c.pushKey, c.numbered = key, true
			c.Adopt(context.Background(), snapshot("a", 2))
			pulls.Store(0)
			err := c.Receive(context.Background(), tc.change)
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("error %v, want %v", err, tc.wantErr)
			}
			if v := c.AppliedVersion(); v != tc.wantVersion {
				t.Errorf("applied version %d, want %d", v, tc.wantVersion)
			}
			if got := pulls.Load(); got != tc.wantPulls {
				t.Errorf("%d pulls, want %d", got, tc.wantPulls)
			}
		})
	}
}

// TestPushEndpoint: the HTTP push answers 403 to a forged change and
// reports the applied version after a real one.
func TestPushEndpoint(t *testing.T) {
	key, _ := NewPushKey()
	forger, _ := NewPushKey()
	var seen []int64
	c := newTestClient(t, "http://x", &seen)
	c.pushKey = key
	push := func(k []byte, snap Snapshot) (int, Health) {
		signed := signFor(0, k, snap)
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, DefaultPushPath, bytes.NewReader(signed.Change))
		req.Header.Set(MACHeader, base64.StdEncoding.EncodeToString(signed.MACs))
		c.Handler().ServeHTTP(rec, req)
		var h Health
		_ = json.Unmarshal(rec.Body.Bytes(), &h)
		return rec.Code, h
	}
	if code, _ := push(forger, snapshot("", 1)); code != http.StatusForbidden {
		t.Errorf("forged push: HTTP %d, want 403", code)
	}
	if code, h := push(key, snapshot("", 1)); code != http.StatusOK || h.AppliedVersion != 1 {
		t.Errorf("signed push: HTTP %d %+v, want 200 with version 1", code, h)
	}
	if fmt.Sprint(seen) != "[1]" {
		t.Errorf("applied %v, want [1]", seen)
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// signFor is the SignedChange of snap for pod number n under key.
func signFor(n int, key []byte, snap Snapshot) SignedChange {
	payload := mustJSON(Change{Snapshot: snap})
	return SignedChange{Change: payload, MACs: MACTable(map[int][]byte{n: MAC(key, payload)})}
}

// TestMACTable: every pod number finds its own entry, and only its own.
func TestMACTable(t *testing.T) {
	macs := map[int][]byte{}
	for _, n := range []int{7, 0, 3, 250, 1} {
		macs[n] = MAC([]byte(fmt.Sprint(n)), []byte("payload"))
	}
	sc := SignedChange{MACs: MACTable(macs)}
	for n, want := range macs {
		if got, ok := sc.macFor(n); !ok || string(got) != string(want) {
			t.Errorf("pod %d: found %x %v, want %x", n, got, ok, want)
		}
	}
	for _, n := range []int{2, 8, 251, -1} {
		if _, ok := sc.macFor(n); ok {
			t.Errorf("pod %d has no entry but one was found", n)
		}
	}
	if _, ok := (SignedChange{MACs: []byte("short")}).macFor(0); ok {
		t.Error("a malformed table gave an entry")
	}
}
