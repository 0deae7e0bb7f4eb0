// Command forwarder is the AWS Lambda function (runtime provided.al2023,
// built as "bootstrap") that posts S3 event notifications, signed, to the
// service's POST /webhooks/s3. All its logic is in internal/forwarder.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
)

func main() {
	handler, err := setup(context.Background(), os.Getenv, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "forwarder:", err)
		os.Exit(1)
	}
	lambda.Start(handler)
}
