// Package dispatch hands the admitted pods of external queues to external
// schedulers through RabbitMQ: one versioned JSON message per pod, on the
// durable queue the Queue names, published with confirmation, published
// again while the pod stays unbound past a deadline, and never after it is
// bound or deleted. Consumers key on the pod's UID, so duplicates are
// harmless. This is the Epsilon design (schedulers fed through a message
// queue) with the losses closed.
package dispatch

import (
	"encoding/json"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// MessageVersion is the apiVersion of PodMessage; consumers refuse others.
const MessageVersion = "switchyard.io/dispatch/v1"

// MessageType is the AMQP type property of dispatch messages.
const MessageType = "switchyard.io/pod-dispatch"

// PodMessage asks an external scheduler to place one pod.
type PodMessage struct {
	APIVersion string    `json:"apiVersion"`
	UID        types.UID `json:"uid"`
	Namespace  string    `json:"namespace"`
	Name       string    `json:"name"`
	Queue      string    `json:"queue"`
	// Attempt counts publications of this pod by this coordinator: 1 for
	// the first, more when republished after the deadline.
	Attempt     int       `json:"attempt"`
	CreatedAt   time.Time `json:"createdAt"`
	PublishedAt time.Time `json:"publishedAt"`
}

// Encode renders the message.
func (m PodMessage) Encode() ([]byte, error) {
	m.APIVersion = MessageVersion
	return json.Marshal(m)
}

// Decode reads and checks a message; an error means no retry can help.
func Decode(body []byte) (PodMessage, error) {
	var m PodMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return m, fmt.Errorf("not a pod dispatch message: %w", err)
	}
	switch {
	case m.APIVersion != MessageVersion:
		return m, fmt.Errorf("apiVersion %q, want %q", m.APIVersion, MessageVersion)
	case m.UID == "" || m.Namespace == "" || m.Name == "":
		return m, fmt.Errorf("message lacks the pod's uid, namespace or name")
	}
	return m, nil
}
