// +k8s:deepcopy-gen=package

// Package config holds the internal types of the Args of Switchyard's
// scheduler plugins. They join the upstream scheduler's configuration group
// (kubescheduler.config.k8s.io), so a profile's pluginConfig is decoded
// strictly, defaulted and converted like the in-tree plugins' Args.
package config
