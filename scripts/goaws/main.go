// Command goaws runs goaws (github.com/Admiral-Piett/goaws), an SQS- and
// SNS-compatible server, for resizer's tests: the same server as goaws'
// own command, but listening on 127.0.0.1 only, where that command takes
// every interface. scripts/tools.sh builds it; internal/sqstest runs it.
package main

import (
	"flag"
	"net/http"
	"time"

	"github.com/Admiral-Piett/goaws/app/conf"
	"github.com/Admiral-Piett/goaws/app/gosqs"
	"github.com/Admiral-Piett/goaws/app/router"
	log "github.com/sirupsen/logrus"
)

func main() {
	config := flag.String("config", "", "goaws YAML configuration; its Local environment is used")
	flag.Parse()
	// goaws logs every message it moves at info level.
	log.SetLevel(log.WarnLevel)
	ports := conf.LoadYamlConfig(*config, "Local")
	// Makes messages whose visibility timeout ran out visible again.
	go gosqs.PeriodicTasks(time.Second, make(chan struct{}))
	log.Fatal(http.ListenAndServe("127.0.0.1:"+ports[0], router.New()))
}
