package configurator

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// SignedChange is what travels to replicas, over HTTP push and over
// RabbitMQ alike: the Change as JSON, and for each replica it is meant for
// an HMAC-SHA256 of exactly those bytes under that replica's own push key.
// The configurator hands each replica a fresh key when it registers (over
// TLS), so a push from anyone else, and from one replica to another, is
// refused. An HTTP push carries the replica's MAC only; a RabbitMQ message,
// one MAC per replica bound to it.
type SignedChange struct {
	Change json.RawMessage `json:"change"`
	// MACs by pod number.
	MACs map[string][]byte `json:"macs"`
}

// PushKeySize is the length of a replica's push key.
const PushKeySize = 32

// NewPushKey makes a replica's push key.
func NewPushKey() ([]byte, error) {
	key := make([]byte, PushKeySize)
	_, err := rand.Read(key)
	return key, err
}

// MAC authenticates payload for the replica holding key.
func MAC(key, payload []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(payload)
	return m.Sum(nil)
}

// ErrBadSignature: the change was not authenticated for this replica by
// the configurator it registered with.
var ErrBadSignature = errors.New("change not signed for this replica by the configurator it registered with")

// Open checks the MAC for pod number n with its key and decodes the change.
func (s SignedChange) Open(n int, key []byte) (Change, error) {
	var change Change
	if len(key) != PushKeySize {
		return change, errors.New("no push key yet: the replica has not registered")
	}
	mac, ok := s.MACs[strconv.Itoa(n)]
	if !ok || !hmac.Equal(mac, MAC(key, s.Change)) {
		return change, ErrBadSignature
	}
	if err := json.Unmarshal(s.Change, &change); err != nil {
		return change, fmt.Errorf("malformed change: %w", err)
	}
	return change, nil
}
