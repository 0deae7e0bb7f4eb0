package httpapi

import "net/http"

// useOnSuccess passes a response through and records the use of a
// single-use upload URL as a 2xx answer starts, before the client can
// learn of the success, so that no success goes unrecorded; any other
// answer leaves the URL usable for a retry. When the use cannot be
// recorded, the answer becomes that failure (a 503 for a full disk): the
// upload is stored, and the retry it invites stores it again, harmlessly.
type useOnSuccess struct {
	http.ResponseWriter
	r        *http.Request
	use      func() error
	answered bool
	replaced bool // by the failure to record the use: the handler's answer is dropped
}

func (u *useOnSuccess) WriteHeader(code int) {
	if u.answered {
		if !u.replaced {
			u.ResponseWriter.WriteHeader(code)
		}
		return
	}
	u.answered = true
	if code/100 == 2 {
		if err := u.use(); err != nil {
			u.replaced = true
			u.Header().Del("Location")
			writeError(u.ResponseWriter, u.r, err)
			return
		}
	}
	u.ResponseWriter.WriteHeader(code)
}

func (u *useOnSuccess) Write(b []byte) (int, error) {
	if !u.answered {
		u.WriteHeader(http.StatusOK)
	}
	if u.replaced {
		return len(b), nil
	}
	return u.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (u *useOnSuccess) Unwrap() http.ResponseWriter { return u.ResponseWriter }
