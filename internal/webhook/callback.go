package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"time"
)

// Callback posts signed JSON events to one URL: the service's own ready
// signals, signed as the forwarder signs S3 events (Resizer-Signature,
// one v1 value for each secret), so that a receiver verifies them with
// Verify and whichever of the secrets it knows.
type Callback struct {
	url string
	// origin is the URL as errors name it: receivers often take a token
	// in the path or the query (hooks.example.com/T0/B0/XXXX, ?token=),
	// and the errors go to the log.
	origin  string
	secrets [][]byte
	client  *http.Client
	// backoff is the wait before each retry; its length bounds them.
	backoff []time.Duration
}

// NewCallback returns a Callback to rawURL (http or https), signing with
// every one of secrets: during a rotation ("new,old") a receiver that
// knows only the old secret, or only the new, still accepts the signal,
// so receivers and the service need not switch at the same moment. It
// fails on a bad URL or when no secret is given.
func NewCallback(rawURL string, secrets [][]byte, client *http.Client) (*Callback, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("callback URL: must be an http or https URL")
	}
	secrets = slices.DeleteFunc(slices.Clone(secrets), func(s []byte) bool { return len(s) == 0 })
	if len(secrets) == 0 {
		return nil, errors.New("callback: no signing secret")
	}
	if client == nil {
		// A receiver answers a small POST in well under a second; one
		// that does not is tried again rather than waited for.
		client = &http.Client{Timeout: 5 * time.Second}
	}
	// A redirect is never followed, as the forwarder follows none: only
	// the receiver's own 2xx is a delivery. Go's client turns a POST
	// into a GET on a 301, 302 or 303, so a login page or an index
	// answering that GET 200 would pass for a signal delivered, and a
	// 307 or 308 would post the signed body wherever Location says.
	c := *client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	client = &c
	// Four tries over some seven seconds: a receiver that restarts is
	// waited for, one that is down does not hold the run of an original.
	return &Callback{url: rawURL, origin: u.Scheme + "://" + u.Host, secrets: secrets, client: client,
		backoff: []time.Duration{500 * time.Millisecond, 2 * time.Second, 4 * time.Second}}, nil
}

// Post sends body as JSON, signed at the time of each try, and retries
// network errors and 408, 429 and 5xx answers. The error is the last
// try's, or ctx's.
func (c *Callback) Post(ctx context.Context, body []byte) error {
	var err error
	for try := 0; ; try++ {
		if err = c.post(ctx, body); err == nil || !retryable(err) || try == len(c.backoff) {
			return err
		}
		select {
		case <-time.After(c.backoff[try]):
		case <-ctx.Done():
			return fmt.Errorf("callback: %w (last: %v)", ctx.Err(), err)
		}
	}
}

// statusError is an answer other than 2xx.
type statusError struct{ code int }

func (e statusError) Error() string {
	if e.code/100 == 3 {
		// Where it points is left out: a login page's query, or a
		// receiver's token, is no business of the log.
		return fmt.Sprintf("callback answered %d, a redirect, not followed: READY_CALLBACK_URL must name the receiver itself", e.code)
	}
	return fmt.Sprintf("callback answered %d", e.code)
}

func retryable(err error) bool {
	var s statusError
	if errors.As(err, &s) {
		return s.code == http.StatusRequestTimeout || s.code == http.StatusTooManyRequests || s.code >= 500
	}
	return true // the network
}

func (c *Callback) post(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("callback to %s: %w", c.origin, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(Header, SignAll(c.secrets, body, time.Now()))
	resp, err := c.client.Do(req)
	if err != nil {
		// net/http's error quotes the whole URL, token and all.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return fmt.Errorf("callback to %s: %w", c.origin, err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	if resp.StatusCode/100 != 2 {
		return statusError{resp.StatusCode}
	}
	return nil
}
