package calcset

import (
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/switchyard-sched/switchyard/pkg/apis/config"
	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
)

func TestParse(t *testing.T) {
	args := &config.CalcSetArgs{
		DefaultWindow:   metav1.Duration{Duration: time.Minute},
		MaxWindow:       metav1.Duration{Duration: 10 * time.Minute},
		DefaultLocality: config.CalcSetLocalityNode,
		MaxSetSize:      100,
	}
	for _, tc := range []struct {
		name       string
		labels     map[string]string
		wantMember bool
		want       Spec
		wantErr    string
	}{
		{name: "not a member", labels: map[string]string{"app": "x"}},
		{name: "defaults", labels: map[string]string{v1alpha1.CalcSetLabel: "s", v1alpha1.CalcSetSizeLabel: "4"}, wantMember: true,
			want: Spec{Namespace: "ns", Name: "s", Size: 4, Locality: config.CalcSetLocalityNode, Window: time.Minute}},
		{name: "zone and window", labels: map[string]string{v1alpha1.CalcSetLabel: "s", v1alpha1.CalcSetSizeLabel: "2", v1alpha1.CalcSetLocalityLabel: "zone", v1alpha1.CalcSetWindowLabel: "90s"}, wantMember: true,
			want: Spec{Namespace: "ns", Name: "s", Size: 2, Locality: config.CalcSetLocalityZone, Window: 90 * time.Second}},
		{name: "empty name", labels: map[string]string{v1alpha1.CalcSetLabel: "", v1alpha1.CalcSetSizeLabel: "2"}, wantMember: true, wantErr: "is empty"},
		{name: "size missing", labels: map[string]string{v1alpha1.CalcSetLabel: "s"}, wantMember: true, wantErr: "is missing"},
		{name: "size not a number", labels: map[string]string{v1alpha1.CalcSetLabel: "s", v1alpha1.CalcSetSizeLabel: "four"}, wantMember: true, wantErr: "not a number"},
		{name: "size zero", labels: map[string]string{v1alpha1.CalcSetLabel: "s", v1alpha1.CalcSetSizeLabel: "0"}, wantMember: true, wantErr: "at least 1"},
		{name: "size negative", labels: map[string]string{v1alpha1.CalcSetLabel: "s", v1alpha1.CalcSetSizeLabel: "-3"}, wantMember: true, wantErr: "at least 1"},
		{name: "size too large", labels: map[string]string{v1alpha1.CalcSetLabel: "s", v1alpha1.CalcSetSizeLabel: "101"}, wantMember: true, wantErr: "largest set"},
		{name: "unknown locality", labels: map[string]string{v1alpha1.CalcSetLabel: "s", v1alpha1.CalcSetSizeLabel: "2", v1alpha1.CalcSetLocalityLabel: "rack"}, wantMember: true, wantErr: "node, zone or none"},
		{name: "bad window", labels: map[string]string{v1alpha1.CalcSetLabel: "s", v1alpha1.CalcSetSizeLabel: "2", v1alpha1.CalcSetWindowLabel: "soon"}, wantMember: true, wantErr: "duration"},
		{name: "window of a nanosecond", labels: map[string]string{v1alpha1.CalcSetLabel: "s", v1alpha1.CalcSetSizeLabel: "2", v1alpha1.CalcSetWindowLabel: "1ns"}, wantMember: true, wantErr: "between 1s and"},
		{name: "window below a second", labels: map[string]string{v1alpha1.CalcSetLabel: "s", v1alpha1.CalcSetSizeLabel: "2", v1alpha1.CalcSetWindowLabel: "999ms"}, wantMember: true, wantErr: "between 1s and"},
		{name: "window of exactly a second", labels: map[string]string{v1alpha1.CalcSetLabel: "s", v1alpha1.CalcSetSizeLabel: "2", v1alpha1.CalcSetWindowLabel: "1s"}, wantMember: true,
			want: Spec{Namespace: "ns", Name: "s", Size: 2, Locality: config.CalcSetLocalityNode, Window: time.Second}},
		{name: "follows a set", labels: map[string]string{v1alpha1.CalcSetLabel: "s", v1alpha1.CalcSetSizeLabel: "2", v1alpha1.CalcSetAfterLabel: "prev"}, wantMember: true,
			want: Spec{Namespace: "ns", Name: "s", Size: 2, Locality: config.CalcSetLocalityNode, Window: time.Minute, After: "prev"}},
		{name: "follows a set, required", labels: map[string]string{v1alpha1.CalcSetLabel: "s", v1alpha1.CalcSetSizeLabel: "2", v1alpha1.CalcSetAfterLabel: "prev", v1alpha1.CalcSetAfterModeLabel: "required"}, wantMember: true,
			want: Spec{Namespace: "ns", Name: "s", Size: 2, Locality: config.CalcSetLocalityNode, Window: time.Minute, After: "prev", AfterRequired: true}},
		{name: "follows a set, preferred said", labels: map[string]string{v1alpha1.CalcSetLabel: "s", v1alpha1.CalcSetSizeLabel: "2", v1alpha1.CalcSetAfterLabel: "prev", v1alpha1.CalcSetAfterModeLabel: "preferred"}, wantMember: true,
			want: Spec{Namespace: "ns", Name: "s", Size: 2, Locality: config.CalcSetLocalityNode, Window: time.Minute, After: "prev"}},
		{name: "follows itself", labels: map[string]string{v1alpha1.CalcSetLabel: "s", v1alpha1.CalcSetSizeLabel: "2", v1alpha1.CalcSetAfterLabel: "s"}, wantMember: true, wantErr: "another calculation set"},
		{name: "follows nothing", labels: map[string]string{v1alpha1.CalcSetLabel: "s", v1alpha1.CalcSetSizeLabel: "2", v1alpha1.CalcSetAfterLabel: ""}, wantMember: true, wantErr: "another calculation set"},
		{name: "unknown after mode", labels: map[string]string{v1alpha1.CalcSetLabel: "s", v1alpha1.CalcSetSizeLabel: "2", v1alpha1.CalcSetAfterLabel: "prev", v1alpha1.CalcSetAfterModeLabel: "strict"}, wantMember: true, wantErr: "preferred or required"},
		{name: "after mode without after", labels: map[string]string{v1alpha1.CalcSetLabel: "s", v1alpha1.CalcSetSizeLabel: "2", v1alpha1.CalcSetAfterModeLabel: "required"}, wantMember: true, wantErr: "needs label"},
		{name: "window above max", labels: map[string]string{v1alpha1.CalcSetLabel: "s", v1alpha1.CalcSetSizeLabel: "2", v1alpha1.CalcSetWindowLabel: "1h"}, wantMember: true, wantErr: "duration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", Labels: tc.labels}}
			spec, member, err := parse(pod, args)
			if member != tc.wantMember {
				t.Fatalf("member = %v, want %v", member, tc.wantMember)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if member && spec != tc.want {
				t.Errorf("spec = %+v, want %+v", spec, tc.want)
			}
		})
	}
}
