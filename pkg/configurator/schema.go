package configurator

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Schema optionally says what a service's values may be: the configurator
// refuses (400) a change that does not fit before anything is stored or
// sent, so a typo never reaches a replica.
type Schema struct {
	// Keys describes each known key.
	Keys map[string]KeySchema `json:"keys"`
	// AllowOtherKeys lets keys that Keys does not name through unchecked;
	// otherwise they are refused.
	AllowOtherKeys bool `json:"allowOtherKeys,omitempty"`
}

// Value types a key may have.
const (
	TypeString   = "string"
	TypeInteger  = "integer"
	TypeNumber   = "number"
	TypeBoolean  = "boolean"
	TypeDuration = "duration"
)

// KeySchema describes one key's values.
type KeySchema struct {
	// Type is string, integer, number, boolean or duration (as Go parses
	// it, e.g. 90s).
	Type string `json:"type"`
	// Enum lists the only values allowed, when set.
	Enum []string `json:"enum,omitempty"`
	// Minimum and Maximum bound integer, number and duration values (a
	// duration's bounds are durations too, in seconds).
	Minimum *float64 `json:"minimum,omitempty"`
	Maximum *float64 `json:"maximum,omitempty"`
	// Pattern is a regular expression string values must match.
	Pattern string `json:"pattern,omitempty"`
}

// Check says what is wrong with the schema itself.
func (s Schema) Check() error {
	if len(s.Keys) == 0 && !s.AllowOtherKeys {
		return fmt.Errorf("a schema names at least one key (or sets allowOtherKeys)")
	}
	for _, k := range sortedKeys(s.Keys) {
		ks := s.Keys[k]
		switch ks.Type {
		case TypeString, TypeInteger, TypeNumber, TypeBoolean, TypeDuration:
		default:
			return fmt.Errorf("key %q: type %q must be one of string, integer, number, boolean, duration", k, ks.Type)
		}
		if ks.Pattern != "" {
			if ks.Type != TypeString {
				return fmt.Errorf("key %q: pattern applies to strings only", k)
			}
			if _, err := regexp.Compile(ks.Pattern); err != nil {
				return fmt.Errorf("key %q: pattern: %v", k, err)
			}
		}
		for _, b := range []*float64{ks.Minimum, ks.Maximum} {
			if b != nil && (math.IsNaN(*b) || math.IsInf(*b, 0)) {
				return fmt.Errorf("key %q: bounds must be finite numbers", k)
			}
		}
		if ks.Minimum != nil && ks.Maximum != nil && *ks.Minimum > *ks.Maximum {
			return fmt.Errorf("key %q: minimum %v is above maximum %v", k, *ks.Minimum, *ks.Maximum)
		}
		for _, e := range ks.Enum {
			if err := ks.check(e); err != nil {
				return fmt.Errorf("key %q: enum value %q: %v", k, e, err)
			}
		}
	}
	return nil
}

// Validate checks values against the schema and names every key that
// does not fit, in key order.
func (s Schema) Validate(values map[string]string) error {
	var problems []string
	for _, k := range sortedKeys(values) {
		ks, known := s.Keys[k]
		if !known {
			if !s.AllowOtherKeys {
				problems = append(problems, fmt.Sprintf("key %q is not in the service's schema (known: %s)", k, strings.Join(sortedKeys(s.Keys), ", ")))
			}
			continue
		}
		if err := ks.check(values[k]); err != nil {
			problems = append(problems, fmt.Sprintf("key %q: %v", k, err))
		} else if len(ks.Enum) > 0 && !slices.Contains(ks.Enum, values[k]) {
			problems = append(problems, fmt.Sprintf("key %q: %q is not one of %s", k, values[k], strings.Join(ks.Enum, ", ")))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return nil
}

// check is one value against its type, pattern and bounds.
func (ks KeySchema) check(v string) error {
	var n float64
	switch ks.Type {
	case TypeString:
		if ks.Pattern != "" {
			if ok, _ := regexp.MatchString(ks.Pattern, v); !ok {
				return fmt.Errorf("%q does not match %s", v, ks.Pattern)
			}
		}
		return nil
	case TypeBoolean:
		if _, err := strconv.ParseBool(v); err != nil {
			return fmt.Errorf("%q is not a boolean (true or false)", v)
		}
		return nil
	case TypeInteger:
		i, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not an integer", v)
		}
		n = float64(i)
	case TypeNumber:
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("%q is not a finite number", v)
		}
		n = f
	case TypeDuration:
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("%q is not a duration (e.g. 90s, 5m)", v)
		}
		n = d.Seconds()
	}
	if ks.Minimum != nil && n < *ks.Minimum {
		return fmt.Errorf("%s is below the minimum %v", v, *ks.Minimum)
	}
	if ks.Maximum != nil && n > *ks.Maximum {
		return fmt.Errorf("%s is above the maximum %v", v, *ks.Maximum)
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
