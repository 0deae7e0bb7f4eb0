package deploy

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/resizer/resizer/internal/s3test"
)

// The compose stack runs the MinIO and mc the tests run: built from
// source at the same versions, never an image tag that moves.
func TestComposeRunsTheTestedMinIO(t *testing.T) {
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	compose, dockerfile, tools := read("../docker-compose.yml"), read("minio/Dockerfile"), read("../scripts/tools.sh")
	arg := func(name string) string {
		m := regexp.MustCompile(`(?m)^ARG ` + name + `=(\S+)$`).FindStringSubmatch(dockerfile)
		if m == nil {
			t.Fatalf("minio/Dockerfile has no ARG %s", name)
		}
		return m[1]
	}
	if got := arg("MINIO_VERSION"); got != s3test.Version {
		t.Errorf("compose builds MinIO %s, the tests run %s", got, s3test.Version)
	}
	mc := regexp.MustCompile(`pkg=github.com/minio/mc version=(\S+) ;;`).FindStringSubmatch(tools)
	if mc == nil || arg("MC_VERSION") != mc[1] {
		t.Errorf("compose builds mc %s, scripts/tools.sh %v", arg("MC_VERSION"), mc)
	}
	// The image's tag names the MinIO commit it holds.
	commit := s3test.Version[strings.LastIndex(s3test.Version, "-")+1:]
	if n := strings.Count(compose, "image: localhost/resizer-minio:"+commit+"\n"); n != 2 {
		t.Errorf("%d services use localhost/resizer-minio:%s, want minio and setup", n, commit)
	}
	if strings.Contains(compose, ":latest") {
		t.Error("an image tag that moves in docker-compose.yml")
	}
}
