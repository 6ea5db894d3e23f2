// Package configurator is the client side of switchyard-configurator, which
// broadcasts runtime configuration to every replica of a service, or to
// exactly one replica by its pod number. A service embeds Client in a few
// lines: it registers (with retry), gets its pod number and current
// configuration, receives changes through a callback, serves the health
// endpoint the configurator checks (reporting the applied version), and
// registers again when the configurator restarts. This file holds the JSON
// API both sides speak (docs/configurator-openapi.yaml describes it).
package configurator

import (
	"maps"
	"strconv"
	"time"
)

// API paths.
const (
	// RegisterPath: POST RegisterRequest, answered with RegisterResponse.
	RegisterPath = "/v1/register"
	// ServicesPath: GET []ServiceInfo; ServicesPath+"/{service}/replicas"
	// GET []ReplicaInfo; ServicesPath+"/{service}/config" GET Snapshot, PUT
	// SetRequest answered with SetResponse.
	ServicesPath = "/v1/services"
	// DefaultHealthPath is where Client serves health; the configurator
	// GETs it and reads Health.
	DefaultHealthPath = "/switchyard/health"
	// DefaultPushPath is where Client accepts Change over HTTP (POST).
	DefaultPushPath = "/switchyard/config"
	// TokenHeader carries the bearer token of write requests.
	TokenHeader = "Authorization"
)

// Replica states.
const (
	// StateHealthy replicas answer their health checks and are targeted.
	StateHealthy = "healthy"
	// StatePruned replicas failed their last check: no longer targeted,
	// still checked, healthy again when they answer.
	StatePruned = "pruned"
)

// RegisterRequest is what a replica says about itself.
type RegisterRequest struct {
	Service string `json:"service"`
	Pod     string `json:"pod"`
	// Address is the base URL the configurator reaches the replica at,
	// e.g. http://10.0.0.7:8080.
	Address    string `json:"address"`
	HealthPath string `json:"healthPath,omitempty"`
	// PreviousPodNumber asks for the number the replica had before the
	// configurator restarted; granted when still free.
	PreviousPodNumber *int `json:"previousPodNumber,omitempty"`
}

// RegisterResponse gives the replica its pod number and configuration.
type RegisterResponse struct {
	PodNumber int      `json:"podNumber"`
	Snapshot  Snapshot `json:"snapshot"`
	// AMQPExchange and RoutingKeys, when the configurator broadcasts over
	// RabbitMQ: bind an exclusive queue to the exchange with these keys.
	AMQPExchange string   `json:"amqpExchange,omitempty"`
	RoutingKeys  []string `json:"routingKeys,omitempty"`
}

// Snapshot is a service's whole configuration at one version: keys for
// every replica, and keys for single pod numbers that override them.
type Snapshot struct {
	Service string                       `json:"service"`
	Version int64                        `json:"version"`
	Values  map[string]string            `json:"values"`
	Pods    map[string]map[string]string `json:"pods,omitempty"`
}

// For returns the configuration pod number n sees.
func (s Snapshot) For(n int) map[string]string {
	out := maps.Clone(s.Values)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, s.Pods[strconv.Itoa(n)])
	return out
}

// Change is one broadcast: the snapshot after the change, and which pod
// number it was meant for (nil: every replica). Replicas apply a Change
// only when its version is newer than what they applied.
type Change struct {
	Target   *int      `json:"target,omitempty"`
	Snapshot Snapshot  `json:"snapshot"`
	SentAt   time.Time `json:"sentAt"`
}

// SetRequest sets keys for a whole service, or for one pod number.
type SetRequest struct {
	Pod    *int              `json:"pod,omitempty"`
	Values map[string]string `json:"values"`
}

// SetResponse is the version the change got.
type SetResponse struct {
	Version int64 `json:"version"`
}

// Health is what a replica's health endpoint answers.
type Health struct {
	Service        string `json:"service"`
	PodNumber      int    `json:"podNumber"`
	AppliedVersion int64  `json:"appliedVersion"`
}

// ServiceInfo is one row of the services list.
type ServiceInfo struct {
	Name     string `json:"name"`
	Replicas int    `json:"replicas"`
	Healthy  int    `json:"healthy"`
	Pruned   int    `json:"pruned"`
	Version  int64  `json:"version"`
}

// ReplicaInfo is one row of a service's replicas.
type ReplicaInfo struct {
	PodNumber      int       `json:"podNumber"`
	Pod            string    `json:"pod"`
	Address        string    `json:"address"`
	State          string    `json:"state"`
	Failures       int       `json:"failures"`
	LastSeen       time.Time `json:"lastSeen"`
	AppliedVersion int64     `json:"appliedVersion"`
}

// Error is the body of every 4xx and 5xx answer.
type Error struct {
	Error string `json:"error"`
}

// RoutingKey is the AMQP routing key of a change for pod number n, or for
// every replica of the service when n is nil.
func RoutingKey(service string, n *int) string {
	if n == nil {
		return service + ".all"
	}
	return service + "." + strconv.Itoa(*n)
}
