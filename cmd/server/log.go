package main

import (
	"io"
	stdlog "log"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/resizer/resizer/internal/config"
)

// newLogger returns the process's logger: JSON lines, or coloured text for
// LOG_FORMAT=console.
func newLogger(cfg config.Config, w io.Writer) zerolog.Logger {
	if cfg.LogFormat == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	}
	level, err := zerolog.ParseLevel(cfg.LogLevel)
	if err != nil {
		level = zerolog.InfoLevel
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
}

// newStdLogger routes net/http's own messages (TLS handshakes, bad
// requests it refuses itself) into the structured log.
func newStdLogger(log zerolog.Logger) *stdlog.Logger {
	return stdlog.New(stdWriter{log}, "", 0)
}

type stdWriter struct{ log zerolog.Logger }

func (s stdWriter) Write(p []byte) (int, error) {
	s.log.Warn().Str("source", "net/http").Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}
