package calcset

import (
	"fmt"
	"strconv"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-sched/switchyard/pkg/apis/config"
	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
)

// Spec is what a member's labels say about its set.
type Spec struct {
	Namespace string
	Name      string
	Size      int
	Locality  config.CalcSetLocality
	Window    time.Duration
	// After names the set (same namespace) this one follows in a
	// pipeline; empty when it follows none.
	After string
	// AfterRequired: the set waits until it fits where After ran, instead
	// of being placed elsewhere once its window has passed.
	AfterRequired bool
}

// AfterKey identifies the set this one follows.
func (s Spec) AfterKey() string { return s.Namespace + "/" + s.After }

// Key identifies the set within the cluster.
func (s Spec) Key() string { return s.Namespace + "/" + s.Name }

// parse reads a pod's set labels. It returns ok=false for pods that are not
// members, and an error a user can act on for members with bad labels.
func parse(pod *v1.Pod, args *config.CalcSetArgs) (spec Spec, ok bool, err error) {
	name, member := pod.Labels[v1alpha1.CalcSetLabel]
	if !member {
		return Spec{}, false, nil
	}
	spec = Spec{Namespace: pod.Namespace, Name: name, Locality: args.DefaultLocality, Window: args.DefaultWindow.Duration}
	if name == "" {
		return spec, true, fmt.Errorf("label %s is empty; it must name the calculation set", v1alpha1.CalcSetLabel)
	}
	raw, found := pod.Labels[v1alpha1.CalcSetSizeLabel]
	if !found {
		return spec, true, fmt.Errorf("label %s is missing; members of set %q must say how many members it has", v1alpha1.CalcSetSizeLabel, name)
	}
	size, convErr := strconv.Atoi(raw)
	switch {
	case convErr != nil:
		return spec, true, fmt.Errorf("label %s=%q is not a number", v1alpha1.CalcSetSizeLabel, raw)
	case size < 1:
		return spec, true, fmt.Errorf("label %s=%q must be at least 1", v1alpha1.CalcSetSizeLabel, raw)
	case size > int(args.MaxSetSize):
		return spec, true, fmt.Errorf("label %s=%q exceeds the largest set this scheduler accepts (%d)", v1alpha1.CalcSetSizeLabel, raw, args.MaxSetSize)
	}
	spec.Size = size
	if raw, found := pod.Labels[v1alpha1.CalcSetLocalityLabel]; found {
		switch l := config.CalcSetLocality(raw); l {
		case config.CalcSetLocalityNode, config.CalcSetLocalityZone, config.CalcSetLocalityNone:
			spec.Locality = l
		default:
			return spec, true, fmt.Errorf("label %s=%q must be node, zone or none", v1alpha1.CalcSetLocalityLabel, raw)
		}
	}
	if raw, found := pod.Labels[v1alpha1.CalcSetWindowLabel]; found {
		window, err := time.ParseDuration(raw)
		if err != nil || window < time.Second || window > args.MaxWindow.Duration {
			return spec, true, fmt.Errorf("label %s=%q must be a duration between 1s and %s, e.g. 90s", v1alpha1.CalcSetWindowLabel, raw, args.MaxWindow.Duration)
		}
		spec.Window = window
	}
	if after, found := pod.Labels[v1alpha1.CalcSetAfterLabel]; found {
		if after == "" || after == name {
			return spec, true, fmt.Errorf("label %s=%q must name another calculation set of the namespace, the one this set follows", v1alpha1.CalcSetAfterLabel, after)
		}
		spec.After = after
	}
	if mode, found := pod.Labels[v1alpha1.CalcSetAfterModeLabel]; found {
		switch {
		case spec.After == "":
			return spec, true, fmt.Errorf("label %s=%q needs label %s naming the set this one follows", v1alpha1.CalcSetAfterModeLabel, mode, v1alpha1.CalcSetAfterLabel)
		case mode == "required":
			spec.AfterRequired = true
		case mode != "preferred":
			return spec, true, fmt.Errorf("label %s=%q must be preferred or required", v1alpha1.CalcSetAfterModeLabel, mode)
		}
	}
	return spec, true, nil
}
