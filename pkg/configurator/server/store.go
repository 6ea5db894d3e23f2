package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
	"github.com/switchyard-sched/switchyard/pkg/configurator"
)

// snapshotKey is the ConfigMap key of the snapshot JSON.
const snapshotKey = "snapshot.json"

// Store keeps the last value of every key in the Kubernetes API, one
// ConfigMap per service, so a restarted configurator, or one on another
// node, starts from it. Writes use the ConfigMap's resourceVersion, so two
// configurators can never overwrite each other's changes silently. The
// ConfigMap's UID is the snapshot's epoch: a ConfigMap deleted and made
// again starts a new epoch.
type Store struct {
	client    kubernetes.Interface
	namespace string
}

// NewStore keeps configuration in ConfigMaps of namespace.
func NewStore(client kubernetes.Interface, namespace string) *Store {
	return &Store{client: client, namespace: namespace}
}

func configMapName(service string) string { return "switchyard-config-" + service }

// ErrStale: the stored configuration is not the one the change was made
// on (another writer, or a write whose answer was lost, got there first).
var ErrStale = errors.New("the stored configuration changed underneath")

// Load reads every service's snapshot.
func (s *Store) Load(ctx context.Context) (map[string]configurator.Snapshot, error) {
	list, err := s.client.CoreV1().ConfigMaps(s.namespace).List(ctx, metav1.ListOptions{LabelSelector: v1alpha1.ConfiguratorServiceLabel})
	if err != nil {
		return nil, fmt.Errorf("loading configuration from ConfigMaps in %s: %w", s.namespace, err)
	}
	out := map[string]configurator.Snapshot{}
	for i := range list.Items {
		snap, err := decodeSnapshot(&list.Items[i])
		if err != nil {
			return nil, err
		}
		out[list.Items[i].Labels[v1alpha1.ConfiguratorServiceLabel]] = snap
	}
	return out, nil
}

// Get reads one service's stored snapshot; ok is false when none is stored.
func (s *Store) Get(ctx context.Context, service string) (snap configurator.Snapshot, ok bool, err error) {
	cm, err := s.client.CoreV1().ConfigMaps(s.namespace).Get(ctx, configMapName(service), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return snap, false, nil
	}
	if err != nil {
		return snap, false, err
	}
	snap, err = decodeSnapshot(cm)
	return snap, err == nil, err
}

func decodeSnapshot(cm *corev1.ConfigMap) (configurator.Snapshot, error) {
	var snap configurator.Snapshot
	if err := json.Unmarshal([]byte(cm.Data[snapshotKey]), &snap); err != nil {
		return snap, fmt.Errorf("ConfigMap %s/%s: %s is not a snapshot: %w", cm.Namespace, cm.Name, snapshotKey, err)
	}
	snap.Epoch = string(cm.UID)
	return snap, nil
}

// Save stores next, made from the stored snapshot of next.Epoch at a lower
// version (epoch "" when nothing was stored). It returns next as stored,
// with its epoch; ErrStale when the stored snapshot is not the one next was
// made from, and nothing changed.
func (s *Store) Save(ctx context.Context, next configurator.Snapshot) (configurator.Snapshot, error) {
	name := configMapName(next.Service)
	cms := s.client.CoreV1().ConfigMaps(s.namespace)
	cm, err := cms.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		// Nothing stored (never, or the ConfigMap was deleted): a new epoch.
		data, err := encodeSnapshot(next)
		if err != nil {
			return next, err
		}
		created, err := cms.Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.namespace, Labels: map[string]string{
				v1alpha1.ConfiguratorServiceLabel: next.Service, "app.kubernetes.io/managed-by": "switchyard-configurator",
			}},
			Data: map[string]string{snapshotKey: data},
		}, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return next, ErrStale
		}
		if err != nil {
			return next, err
		}
		next.Epoch = string(created.UID)
		return next, nil
	}
	if err != nil {
		return next, err
	}
	stored, err := decodeSnapshot(cm)
	if err != nil {
		return next, err
	}
	if stored.Epoch != next.Epoch || stored.Version >= next.Version {
		return next, ErrStale
	}
	data, err := encodeSnapshot(next)
	if err != nil {
		return next, err
	}
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	cm.Data[snapshotKey] = data
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		if apierrors.IsConflict(err) {
			return next, ErrStale
		}
		return next, err
	}
	return next, nil
}

// encodeSnapshot stores everything but the epoch, which is the ConfigMap's
// own UID.
func encodeSnapshot(snap configurator.Snapshot) (string, error) {
	snap.Epoch = ""
	data, err := json.Marshal(snap)
	return string(data), err
}
