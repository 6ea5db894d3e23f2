package configurator

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
)

// SignedChange is what travels to replicas, over HTTP push and over
// RabbitMQ alike: the Change as JSON (the body), and for each replica it is
// meant for an HMAC-SHA256 of exactly those bytes under that replica's own
// push key (a header: MACHeader over HTTP, MACsAMQPHeader on a broker
// message). The configurator hands each replica a fresh key when it
// registers (over TLS), so a push from anyone else, and from one replica to
// another, is refused. An HTTP push carries its replica's MAC only; a
// RabbitMQ message, one per replica bound to it.
type SignedChange struct {
	// Change is the JSON of a Change.
	Change []byte
	// MACs is a table sorted by pod number, one macEntrySize-byte entry per
	// replica: its pod number (4 bytes, big-endian), then its MAC. Kept out
	// of the JSON body: each of 200 replicas finds its entry in 7 KB of
	// bytes instead of scanning them as JSON.
	MACs []byte
}

// Where the MAC table travels.
const (
	// MACHeader is the HTTP header of a push: the table, base64.
	MACHeader = "X-Switchyard-Macs"
	// MACsAMQPHeader is the AMQP header of a broker message: the table.
	MACsAMQPHeader = "switchyard-macs"
)

// PushKeySize is the length of a replica's push key.
const PushKeySize = 32

const macEntrySize = 4 + sha256.Size

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

// MACTable is the MACs of a SignedChange: macs by pod number.
func MACTable(macs map[int][]byte) []byte {
	numbers := make([]int, 0, len(macs))
	for n := range macs {
		numbers = append(numbers, n)
	}
	sort.Ints(numbers)
	out := make([]byte, 0, len(numbers)*macEntrySize)
	for _, n := range numbers {
		out = binary.BigEndian.AppendUint32(out, uint32(n))
		out = append(out, macs[n]...)
	}
	return out
}

// macFor finds pod number n's MAC in the table.
func (s SignedChange) macFor(n int) ([]byte, bool) {
	if len(s.MACs)%macEntrySize != 0 || n < 0 {
		return nil, false
	}
	entries := len(s.MACs) / macEntrySize
	i := sort.Search(entries, func(i int) bool {
		return binary.BigEndian.Uint32(s.MACs[i*macEntrySize:]) >= uint32(n)
	})
	if i == entries || binary.BigEndian.Uint32(s.MACs[i*macEntrySize:]) != uint32(n) {
		return nil, false
	}
	return s.MACs[i*macEntrySize+4 : (i+1)*macEntrySize], true
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
	mac, ok := s.macFor(n)
	if !ok || !hmac.Equal(mac, MAC(key, s.Change)) {
		return change, ErrBadSignature
	}
	if err := json.Unmarshal(s.Change, &change); err != nil {
		return change, fmt.Errorf("malformed change: %w", err)
	}
	return change, nil
}
