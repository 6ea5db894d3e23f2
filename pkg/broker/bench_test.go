package broker

import (
	"context"
	"testing"
)

// BenchmarkPublishConfirmed measures publishes that return only once the
// broker confirmed them (persistent, mandatory), one at a time and from
// many goroutines, on RabbitMQ and in process. make bench prints them side
// by side.
func BenchmarkPublishConfirmed(b *testing.B) {
	body := make([]byte, 256) // about the size of a pod dispatch message
	for _, impl := range implementations() {
		for _, parallel := range []bool{false, true} {
			name := impl.name + "/sequential"
			if parallel {
				name = impl.name + "/parallel"
			}
			b.Run(name, func(b *testing.B) {
				topo, exchange, _ := testTopology()
				br := openForBench(b, impl, topo)
				ctx := context.Background()
				b.SetBytes(int64(len(body)))
				b.ResetTimer()
				if !parallel {
					for range b.N {
						if err := br.Publish(ctx, exchange, "pods.bench", Message{Body: body}); err != nil {
							b.Fatal(err)
						}
					}
					return
				}
				b.SetParallelism(16)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := br.Publish(ctx, exchange, "pods.bench", Message{Body: body}); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}

func openForBench(b *testing.B, impl implementation, topo Topology) Broker {
	if impl.name == "in-process" {
		br, err := NewInProcess(topo, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = br.Close() })
		return br
	}
	ctx := context.Background()
	br, err := DialAMQP(ctx, AMQPOptions{URL: amqpURL(), Name: "bench", Topology: topo})
	if err != nil {
		b.Skipf("RabbitMQ at %s unavailable: %v", amqpURL(), err)
	}
	b.Cleanup(func() {
		_ = br.Close()
		deleteTopology(b, topo)
	})
	return br
}
