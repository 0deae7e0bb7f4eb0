package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Header is the HTTP header that carries the signature.
const Header = "Resizer-Signature"

// tolerance is how far a signature's time may be from the verifier's
// clock: beyond it a captured request cannot be replayed.
const tolerance = 5 * time.Minute

// The failures of Verify; each means 401.
var (
	ErrNoSignature  = errors.New("no signature")
	ErrBadSignature = errors.New("signature does not match")
	ErrStale        = errors.New("signature too old or from the future")
)

// Secrets are the secrets of a configured list (WEBHOOK_SECRETS,
// READY_CALLBACK_SECRETS), as Sign, SignAll and Verify take them.
func Secrets(list []string) [][]byte {
	out := make([][]byte, len(list))
	for i, s := range list {
		out[i] = []byte(s)
	}
	return out
}

// Sign returns the Resizer-Signature value for body at time t:
// "t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">".
func Sign(secret, body []byte, t time.Time) string {
	return SignAll([][]byte{secret}, body, t)
}

// SignAll signs body with each of secrets, one v1 value each. A signer
// that holds "new,old" during a rotation is then accepted by a verifier
// that knows either, so the signers and the verifiers need not switch at
// the same moment.
func SignAll(secrets [][]byte, body []byte, t time.Time) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	var b strings.Builder
	b.WriteString("t=" + ts)
	for _, s := range secrets {
		b.WriteString(",v1=" + mac(s, ts, body))
	}
	return b.String()
}

func mac(secret []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Verify checks a Resizer-Signature value against body. Any of secrets may
// have signed it (rotation: the new secret is added everywhere before the
// signer moves to it, the old one removed after), and the header may carry
// several v1 values. Comparisons are constant-time. The time must lie
// within tolerance of now.
func Verify(header string, body []byte, secrets [][]byte, now time.Time) error {
	ts, sigs, err := parse(header, now)
	if err != nil {
		return err
	}
	match := false
	for _, secret := range secrets {
		want, _ := hex.DecodeString(mac(secret, ts, body))
		for _, got := range sigs {
			if hmac.Equal(got, want) {
				match = true
			}
		}
	}
	if !match {
		return ErrBadSignature
	}
	return nil
}

// Precheck is what Verify can tell of a header without the body: that it
// is a signature at all, and of a time within tolerance of now. A verifier
// calls it before reading the body, so that a request that can never pass
// costs nothing to refuse; Verify checks it again.
func Precheck(header string, now time.Time) error {
	_, _, err := parse(header, now)
	return err
}

// parse reads a header's time and v1 values, and checks the time.
func parse(header string, now time.Time) (ts string, sigs [][]byte, err error) {
	if header == "" {
		return "", nil, ErrNoSignature
	}
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			if b, err := hex.DecodeString(v); err == nil && len(b) == sha256.Size {
				sigs = append(sigs, b)
			}
		}
	}
	t, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return "", nil, fmt.Errorf("%w: want t=<unix>,v1=<hex>", ErrBadSignature)
	}
	if d := now.Sub(time.Unix(t, 0)); d > tolerance || d < -tolerance {
		return "", nil, fmt.Errorf("%w: %s off", ErrStale, d.Round(time.Second))
	}
	return ts, sigs, nil
}
