// Package configurator is the client side of switchyard-configurator, which
// broadcasts runtime configuration to every replica of a service, or to
// exactly one replica by its pod number. A service embeds Client in a few
// lines: it registers (with retry), gets its pod number and current
// configuration, receives changes through a callback, serves the health
// endpoint the configurator checks (reporting the applied version), and
// registers again when the configurator restarts. This file holds the JSON
// API both sides speak (docs/configurator-openapi.yaml describes it).
//
// Trust: every call to the configurator carries a service account token
// requested for the audience switchyard-configurator; the configurator
// reviews it (TokenReview) and authorizes the call per service
// (SubjectAccessReview on configurations.switchyard.io). A replica registers
// with a token bound to its own pod, and only as that pod, at that pod's IP.
// Every change the configurator sends carries an HMAC under the replica's
// own push key, which the replica gets when it registers (over TLS), so a
// push from anyone else, another replica included, is refused.
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
	// SetRequest answered with SetResponse; ServicesPath+"/{service}/rollout"
	// GET RolloutStatus; ServicesPath+"/{service}/schema" PUT Schema
	// answered with SetResponse.
	ServicesPath = "/v1/services"
	// DefaultHealthPath is where Client serves health; the configurator
	// GETs it and reads Health.
	DefaultHealthPath = "/switchyard/health"
	// DefaultPushPath is where Client accepts a SignedChange over HTTP
	// (POST), answering with its Health once the change is applied.
	DefaultPushPath = "/switchyard/config"
)

// Replica states.
const (
	// StateHealthy replicas answer their health checks and are targeted.
	StateHealthy = "healthy"
	// StatePruned replicas failed their last check: no longer targeted,
	// still checked, healthy again when they answer.
	StatePruned = "pruned"
)

// RegisterRequest is what a replica says about itself. Who it is comes from
// its token: the pod the token is bound to.
type RegisterRequest struct {
	Service string `json:"service"`
	// Pod, when set, must be the pod the token is bound to: a mismatch is
	// refused, not corrected.
	Pod string `json:"pod,omitempty"`
	// Address is the base URL the configurator reaches the replica at,
	// e.g. http://10.0.0.7:8080. Its host must be one of the pod's IPs.
	Address    string `json:"address"`
	HealthPath string `json:"healthPath,omitempty"`
	// PreviousPodNumber asks for the number the replica had before the
	// configurator restarted; granted when still free.
	PreviousPodNumber *int `json:"previousPodNumber,omitempty"`
}

// RegisterResponse gives the replica its identity, pod number and
// configuration.
type RegisterResponse struct {
	PodNumber int `json:"podNumber"`
	// Namespace and Pod are the replica as its token names it.
	Namespace string   `json:"namespace"`
	Pod       string   `json:"pod"`
	Snapshot  Snapshot `json:"snapshot"`
	// PushKey is this registration's own key: the replica accepts a change
	// only when it carries an HMAC made with it (see SignedChange).
	PushKey []byte `json:"pushKey"`
	// AMQPExchange and RoutingKeys, when the configurator broadcasts over
	// RabbitMQ: bind an exclusive queue to the exchange with these keys.
	AMQPExchange string   `json:"amqpExchange,omitempty"`
	RoutingKeys  []string `json:"routingKeys,omitempty"`
}

// Snapshot is a service's whole configuration at one version: keys for
// every replica, and keys for single pod numbers that override them.
// Versions only grow within an epoch. The epoch names the stored copy (the
// UID of its ConfigMap): when that copy is lost and made again, replicas see
// a new epoch and resync, instead of ignoring versions that start below
// theirs.
type Snapshot struct {
	Service string                       `json:"service"`
	Epoch   string                       `json:"epoch,omitempty"`
	Version int64                        `json:"version"`
	Values  map[string]string            `json:"values"`
	Pods    map[string]map[string]string `json:"pods,omitempty"`
	// Schema, when set, is what every value must fit.
	Schema *Schema `json:"schema,omitempty"`
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
// number it was meant for (nil: every replica). It travels signed, inside a
// SignedChange.
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
	Epoch   string `json:"epoch,omitempty"`
	Version int64  `json:"version"`
}

// Health is what a replica's health endpoint answers (and its push
// endpoint, once it applied a change): the configuration it runs.
type Health struct {
	Service        string `json:"service"`
	PodNumber      int    `json:"podNumber"`
	Epoch          string `json:"epoch,omitempty"`
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
	Namespace      string    `json:"namespace"`
	Pod            string    `json:"pod"`
	Address        string    `json:"address"`
	State          string    `json:"state"`
	Failures       int       `json:"failures"`
	LastSeen       time.Time `json:"lastSeen"`
	AppliedEpoch   string    `json:"appliedEpoch,omitempty"`
	AppliedVersion int64     `json:"appliedVersion"`
	// WantVersion is the version the replica must have applied to run the
	// latest configuration meant for it: changes for other pod numbers do
	// not count.
	WantVersion int64 `json:"wantVersion"`
}

// Current says whether the replica runs the latest configuration meant for
// it, in the service's epoch.
func (r ReplicaInfo) Current(epoch string) bool {
	return r.AppliedEpoch == epoch && r.AppliedVersion >= r.WantVersion
}

// RolloutStatus answers "has every replica applied version V?".
type RolloutStatus struct {
	Service string `json:"service"`
	Epoch   string `json:"epoch,omitempty"`
	Version int64  `json:"version"`
	// Replicas registered; Healthy among them; Current: healthy replicas
	// that applied what is meant for them.
	Replicas int `json:"replicas"`
	Healthy  int `json:"healthy"`
	Current  int `json:"current"`
	// Stragglers are the replicas that are not current, pruned ones too.
	Stragglers []ReplicaInfo `json:"stragglers"`
}

// Done says whether every healthy replica is current.
func (s RolloutStatus) Done() bool { return s.Current == s.Healthy }

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
