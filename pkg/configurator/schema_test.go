package configurator

import (
	"strings"
	"testing"
)

func ptr(f float64) *float64 { return &f }

// TestSchemaValidate: each type, bound, enum and pattern, and unknown keys.
func TestSchemaValidate(t *testing.T) {
	schema := Schema{Keys: map[string]KeySchema{
		"level":   {Type: TypeString, Enum: []string{"debug", "info"}},
		"name":    {Type: TypeString, Pattern: `^[a-z]+$`},
		"pool":    {Type: TypeInteger, Minimum: ptr(1), Maximum: ptr(100)},
		"ratio":   {Type: TypeNumber, Minimum: ptr(0), Maximum: ptr(1)},
		"enabled": {Type: TypeBoolean},
		"timeout": {Type: TypeDuration, Maximum: ptr(60)},
	}}
	for _, tc := range []struct {
		values  map[string]string
		mention string // "" when valid
	}{
		{map[string]string{"level": "debug", "pool": "10", "ratio": "0.5", "enabled": "true", "timeout": "30s", "name": "abc"}, ""},
		{map[string]string{"level": "trace"}, `"trace" is not one of debug, info`},
		{map[string]string{"name": "ABC"}, "does not match"},
		{map[string]string{"pool": "ten"}, "not an integer"},
		{map[string]string{"pool": "0"}, "below the minimum 1"},
		{map[string]string{"pool": "101"}, "above the maximum 100"},
		{map[string]string{"pool": "99999999999999999999"}, "not an integer"},
		{map[string]string{"ratio": "NaN"}, "not a finite number"},
		{map[string]string{"ratio": "+Inf"}, "not a finite number"},
		{map[string]string{"ratio": "1.5"}, "above the maximum 1"},
		{map[string]string{"enabled": "yes"}, "not a boolean"},
		{map[string]string{"timeout": "2m"}, "above the maximum 60"},
		{map[string]string{"timeout": "soon"}, "not a duration"},
		{map[string]string{"colour": "red"}, `key "colour" is not in the service's schema`},
		{map[string]string{"pool": "0", "ratio": "2"}, `key "pool": 0 is below the minimum 1; key "ratio": 2 is above`},
	} {
		err := schema.Validate(tc.values)
		switch {
		case tc.mention == "" && err != nil:
			t.Errorf("%v: %v, want valid", tc.values, err)
		case tc.mention != "" && (err == nil || !strings.Contains(err.Error(), tc.mention)):
			t.Errorf("%v: %v, want an error mentioning %q", tc.values, err, tc.mention)
		}
	}
	open := Schema{Keys: map[string]KeySchema{"pool": {Type: TypeInteger}}, AllowOtherKeys: true}
	if err := open.Validate(map[string]string{"colour": "red", "pool": "3"}); err != nil {
		t.Errorf("allowOtherKeys: %v", err)
	}
}

// TestSchemaCheck: a schema that could never be met is refused.
func TestSchemaCheck(t *testing.T) {
	for _, tc := range []struct {
		schema  Schema
		mention string
	}{
		{Schema{Keys: map[string]KeySchema{"a": {Type: TypeInteger, Minimum: ptr(0)}}}, ""},
		{Schema{}, "at least one key"},
		{Schema{Keys: map[string]KeySchema{"a": {Type: "int"}}}, `type "int"`},
		{Schema{Keys: map[string]KeySchema{"a": {Type: TypeInteger, Minimum: ptr(5), Maximum: ptr(1)}}}, "above maximum"},
		{Schema{Keys: map[string]KeySchema{"a": {Type: TypeString, Pattern: "("}}}, "pattern"},
		{Schema{Keys: map[string]KeySchema{"a": {Type: TypeInteger, Pattern: "x"}}}, "strings only"},
		{Schema{Keys: map[string]KeySchema{"a": {Type: TypeInteger, Enum: []string{"1", "x"}}}}, `enum value "x"`},
	} {
		err := tc.schema.Check()
		if tc.mention == "" && err != nil || tc.mention != "" && (err == nil || !strings.Contains(err.Error(), tc.mention)) {
			t.Errorf("%+v: %v, want %q", tc.schema, err, tc.mention)
		}
	}
}
