package calcset

import (
	"fmt"
	"strconv"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-sched/switchyard/pkg/apis/config"
)

// Labels that make a pod a member of a calculation set.
const (
	// SetLabel names the set; members share it within one namespace.
	SetLabel = "switchyard.io/calcset"
	// SizeLabel is the number of members the set needs, all or nothing.
	SizeLabel = "switchyard.io/calcset-size"
	// LocalityLabel is node, zone or none: how close members must be.
	LocalityLabel = "switchyard.io/calcset-locality"
	// WindowLabel is how long reserved members wait for the rest, e.g. "90s".
	WindowLabel = "switchyard.io/calcset-window"
)

// ZoneLabel is the node label that defines a zone for zone locality.
const ZoneLabel = v1.LabelTopologyZone

// Spec is what a member's labels say about its set.
type Spec struct {
	Namespace string
	Name      string
	Size      int
	Locality  config.CalcSetLocality
	Window    time.Duration
}

// Key identifies the set within the cluster.
func (s Spec) Key() string { return s.Namespace + "/" + s.Name }

// parse reads a pod's set labels. It returns ok=false for pods that are not
// members, and an error a user can act on for members with bad labels.
func parse(pod *v1.Pod, args *config.CalcSetArgs) (spec Spec, ok bool, err error) {
	name, member := pod.Labels[SetLabel]
	if !member {
		return Spec{}, false, nil
	}
	spec = Spec{Namespace: pod.Namespace, Name: name, Locality: args.DefaultLocality, Window: args.DefaultWindow.Duration}
	if name == "" {
		return spec, true, fmt.Errorf("label %s is empty; it must name the calculation set", SetLabel)
	}
	raw, found := pod.Labels[SizeLabel]
	if !found {
		return spec, true, fmt.Errorf("label %s is missing; members of set %q must say how many members it has", SizeLabel, name)
	}
	size, convErr := strconv.Atoi(raw)
	switch {
	case convErr != nil:
		return spec, true, fmt.Errorf("label %s=%q is not a number", SizeLabel, raw)
	case size < 1:
		return spec, true, fmt.Errorf("label %s=%q must be at least 1", SizeLabel, raw)
	case size > int(args.MaxSetSize):
		return spec, true, fmt.Errorf("label %s=%q exceeds the largest set this scheduler accepts (%d)", SizeLabel, raw, args.MaxSetSize)
	}
	spec.Size = size
	if raw, found := pod.Labels[LocalityLabel]; found {
		switch l := config.CalcSetLocality(raw); l {
		case config.CalcSetLocalityNode, config.CalcSetLocalityZone, config.CalcSetLocalityNone:
			spec.Locality = l
		default:
			return spec, true, fmt.Errorf("label %s=%q must be node, zone or none", LocalityLabel, raw)
		}
	}
	if raw, found := pod.Labels[WindowLabel]; found {
		window, err := time.ParseDuration(raw)
		if err != nil || window <= 0 || window > args.MaxWindow.Duration {
			return spec, true, fmt.Errorf("label %s=%q must be a duration between 1s and %s, e.g. 90s", WindowLabel, raw, args.MaxWindow.Duration)
		}
		spec.Window = window
	}
	return spec, true, nil
}
