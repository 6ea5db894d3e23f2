package dispatch

import (
	"strings"
	"testing"
	"time"
)

func TestMessageRoundTrip(t *testing.T) {
	in := PodMessage{UID: "u1", Namespace: "ns", Name: "p", Queue: "short", Attempt: 2, CreatedAt: time.Unix(10, 0).UTC(), PublishedAt: time.Unix(20, 0).UTC()}
	body, err := in.Encode()
	if err != nil {
		t.Fatal(err)
	}
	out, err := Decode(body)
	if err != nil {
		t.Fatal(err)
	}
	in.APIVersion = MessageVersion
	if out != in {
		t.Errorf("decoded %+v, want %+v", out, in)
	}
}

func TestDecodeRefuses(t *testing.T) {
	for body, want := range map[string]string{
		`{not json`: "not a pod dispatch message",
		`{"apiVersion":"switchyard.io/dispatch/v9","uid":"u","namespace":"n","name":"p"}`: "apiVersion",
		`{"apiVersion":"switchyard.io/dispatch/v1","namespace":"n","name":"p"}`:           "lacks",
	} {
		if _, err := Decode([]byte(body)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Decode(%s) = %v, want an error mentioning %q", body, err, want)
		}
	}
}
