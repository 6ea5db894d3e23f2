package configurator

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
)

// SignedChange is what travels to replicas, over HTTP push and over
// RabbitMQ alike: the Change as JSON and the configurator's Ed25519
// signature of exactly those bytes. One signature serves every replica and
// both transports; no replica holds anything that could sign, so a replica
// cannot forge a change for its siblings either.
type SignedChange struct {
	Change    json.RawMessage `json:"change"`
	Signature []byte          `json:"signature"`
}

// Sign makes the SignedChange of change.
func Sign(key ed25519.PrivateKey, change Change) (SignedChange, error) {
	payload, err := json.Marshal(change)
	if err != nil {
		return SignedChange{}, err
	}
	return SignedChange{Change: payload, Signature: ed25519.Sign(key, payload)}, nil
}

// ErrBadSignature: the change was not signed by the configurator this
// replica registered with.
var ErrBadSignature = errors.New("change not signed by the configurator this replica registered with")

// Open checks the signature with the configurator's public key and
// decodes the change.
func (s SignedChange) Open(key ed25519.PublicKey) (Change, error) {
	var change Change
	if len(key) != ed25519.PublicKeySize {
		return change, errors.New("no signing key yet: the replica has not registered")
	}
	if !ed25519.Verify(key, s.Change, s.Signature) {
		return change, ErrBadSignature
	}
	if err := json.Unmarshal(s.Change, &change); err != nil {
		return change, fmt.Errorf("malformed change: %w", err)
	}
	return change, nil
}
