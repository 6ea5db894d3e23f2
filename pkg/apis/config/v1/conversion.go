package v1

import (
	"k8s.io/apimachinery/pkg/conversion"

	"github.com/switchyard-sched/switchyard/pkg/apis/config"
)

// Convert_v1_CalcSetArgs_To_config_CalcSetArgs converts the versioned Args,
// whose locality is a plain string on the wire, to the internal ones.
func Convert_v1_CalcSetArgs_To_config_CalcSetArgs(in *CalcSetArgs, out *config.CalcSetArgs, s conversion.Scope) error { //nolint:revive // name required by conversion-gen
	if err := autoConvert_v1_CalcSetArgs_To_config_CalcSetArgs(in, out, s); err != nil {
		return err
	}
	out.DefaultLocality = ""
	if in.DefaultLocality != nil {
		out.DefaultLocality = config.CalcSetLocality(*in.DefaultLocality)
	}
	return nil
}

// Convert_config_CalcSetArgs_To_v1_CalcSetArgs converts internal Args back
// to the versioned form.
func Convert_config_CalcSetArgs_To_v1_CalcSetArgs(in *config.CalcSetArgs, out *CalcSetArgs, s conversion.Scope) error { //nolint:revive // name required by conversion-gen
	if err := autoConvert_config_CalcSetArgs_To_v1_CalcSetArgs(in, out, s); err != nil {
		return err
	}
	locality := string(in.DefaultLocality)
	out.DefaultLocality = &locality
	return nil
}
