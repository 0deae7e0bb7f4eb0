package deploy

import (
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/resizer/resizer/internal/config"
	"github.com/resizer/resizer/internal/pipeline"
)

// load parses the template into plain maps, slices and strings, with the
// short intrinsic functions (!Ref, !Sub, !GetAtt, !If, ...) turned into
// their long forms ({"Ref": ...}, {"Fn::Sub": ...}).
func load(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile("cloudformation.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var n yaml.Node
	if err := yaml.Unmarshal(b, &n); err != nil {
		t.Fatal(err)
	}
	return value(n.Content[0]).(map[string]any)
}

func value(n *yaml.Node) any {
	var v any
	switch n.Kind {
	case yaml.MappingNode:
		m := map[string]any{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			m[n.Content[i].Value] = value(n.Content[i+1])
		}
		v = m
	case yaml.SequenceNode:
		s := []any{}
		for _, c := range n.Content {
			s = append(s, value(c))
		}
		v = s
	default:
		v = n.Value
	}
	if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
		fn := strings.TrimPrefix(n.Tag, "!")
		if fn != "Ref" {
			fn = "Fn::" + fn
		}
		return map[string]any{fn: v}
	}
	return v
}

// get walks a path of map keys and slice indexes.
func get(t *testing.T, v any, path ...any) any {
	t.Helper()
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("%v: not a map at %q", path, k)
			}
			v = m[k]
		case int:
			s, ok := v.([]any)
			if !ok || k >= len(s) {
				t.Fatalf("%v: no item %d", path, k)
			}
			v = s[k]
		}
	}
	return v
}

// resolve returns v as CloudFormation would see it with the conditions
// conds (a condition not named is false): each Fn::If replaced by its
// branch, and AWS::NoValue dropped from lists and maps.
func resolve(v any, conds map[string]bool) any {
	noValue := func(v any) bool { return fmt.Sprint(v) == fmt.Sprint(map[string]any{"Ref": "AWS::NoValue"}) }
	switch x := v.(type) {
	case map[string]any:
		if args, ok := x["Fn::If"].([]any); ok && len(x) == 1 && len(args) == 3 {
			if conds[args[0].(string)] {
				return resolve(args[1], conds)
			}
			return resolve(args[2], conds)
		}
		m := map[string]any{}
		for k, e := range x {
			if r := resolve(e, conds); !noValue(r) {
				m[k] = r
			}
		}
		return m
	case []any:
		s := []any{}
		for _, e := range x {
			if r := resolve(e, conds); !noValue(r) {
				s = append(s, r)
			}
		}
		return s
	}
	return v
}

func resources(t *testing.T, tpl map[string]any, typ string) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for name, r := range tpl["Resources"].(map[string]any) {
		if rm := r.(map[string]any); rm["Type"] == typ {
			out[name] = rm
		}
	}
	return out
}

func list(v any) []any {
	if s, ok := v.([]any); ok {
		return s
	}
	return []any{v}
}

func TestBucketIsPrivateEncryptedAndNotifiesOnlyInputs(t *testing.T) {
	tpl := load(t)
	bucket := get(t, tpl, "Resources", "Bucket").(map[string]any)
	b := get(t, bucket, "Properties")
	for _, k := range []string{"BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"} {
		if get(t, b, "PublicAccessBlockConfiguration", k) != "true" {
			t.Errorf("public access: %s is not true", k)
		}
	}
	if get(t, b, "BucketEncryption", "ServerSideEncryptionConfiguration", 0, "ServerSideEncryptionByDefault", "SSEAlgorithm") == nil {
		t.Error("no default encryption")
	}
	confs := list(get(t, b, "NotificationConfiguration", "QueueConfigurations"))
	if len(confs) == 0 {
		t.Fatal("no notification to the queue")
	}
	events := map[string]bool{}
	for i, c := range confs {
		events[fmt.Sprint(get(t, c, "Event"))] = true
		rule := get(t, c, "Filter", "S3Key", "Rules", 0)
		if get(t, rule, "Name") != "prefix" || fmt.Sprint(get(t, rule, "Value")) != fmt.Sprint(map[string]any{"Ref": "InputPrefix"}) {
			t.Errorf("notification %d is not filtered by the input prefix: %v", i, rule)
		}
		if fmt.Sprint(get(t, c, "Queue")) != fmt.Sprint(map[string]any{"Fn::GetAtt": "EventQueue.Arn"}) {
			t.Errorf("notification %d goes to %v, not the event queue", i, get(t, c, "Queue"))
		}
	}
	// Every removal, not only delete markers: a version deleted by its ID
	// can bring an older one back, whose variants must be made again; and
	// the expirations of lifecycle rules, which S3 reports apart.
	if !events["s3:ObjectCreated:*"] || !events["s3:ObjectRemoved:*"] || !events["s3:LifecycleExpiration:*"] {
		t.Errorf("notified of %v, want every creation, every removal and every expiration", events)
	}
	if ns := get(t, b, "NotificationConfiguration"); len(ns.(map[string]any)) != 1 {
		t.Errorf("notifications besides the queue's: %v", ns)
	}
	// The originals outlive the stack and their own overwrites.
	if bucket["DeletionPolicy"] != "Retain" || bucket["UpdateReplacePolicy"] != "Retain" {
		t.Errorf("bucket deletion policy %v, replace policy %v", bucket["DeletionPolicy"], bucket["UpdateReplacePolicy"])
	}
	if get(t, b, "VersioningConfiguration", "Status") != "Enabled" {
		t.Error("bucket not versioned")
	}
	rules := fmt.Sprint(get(t, b, "LifecycleConfiguration", "Rules"))
	for _, want := range []string{"AbortIncompleteMultipartUpload", "NoncurrentVersionExpiration"} {
		if !strings.Contains(rules, want) {
			t.Errorf("no lifecycle rule with %s", want)
		}
	}
	if strings.Contains(fmt.Sprint(get(t, b, "CorsConfiguration")), "AllowedOrigins:[*]") {
		t.Error("CORS from any origin")
	}
}

// defaults gives the value CloudFormation would give v, a Ref or a Sub of
// parameters, with every parameter at its default.
func defaults(t *testing.T, tpl map[string]any, v any) string {
	t.Helper()
	param := func(name string) string {
		d, ok := get(t, tpl, "Parameters", name).(map[string]any)["Default"].(string)
		if !ok {
			t.Fatalf("parameter %s has no default", name)
		}
		return d
	}
	switch x := v.(type) {
	case string:
		return x
	case map[string]any:
		if name, ok := x["Ref"].(string); ok {
			return param(name)
		}
		if sub, ok := x["Fn::Sub"].(string); ok {
			for _, part := range strings.Split(sub, "${")[1:] {
				name, _, _ := strings.Cut(part, "}")
				sub = strings.ReplaceAll(sub, "${"+name+"}", param(name))
			}
			return sub
		}
	}
	t.Fatalf("cannot evaluate %v", v)
	return ""
}

// Each object's noncurrent versions live as long as the shortest of the
// enabled lifecycle rules that cover it says (S3 honours the shorter of
// two overlapping expirations): an original, a watermark or anything else
// NoncurrentVersionDays, so that an overwrite or a delete can be undone;
// everything under the output prefix, which the service makes again, one
// day, so that a reconcile that rewrites every variant, the derived cache's
// expiry and purges, and the daily rewrite of path markers do not keep a
// second copy for a month. Delete markers left alone go everywhere.
func TestLifecycleOfVersions(t *testing.T) {
	tpl := load(t)
	rules := list(get(t, tpl, "Resources", "Bucket", "Properties", "LifecycleConfiguration", "Rules"))
	keep, err := strconv.Atoi(defaults(t, tpl, map[string]any{"Ref": "NoncurrentVersionDays"}))
	if err != nil || keep <= 1 {
		t.Fatalf("NoncurrentVersionDays defaults to %d (%v)", keep, err)
	}
	out := defaults(t, tpl, map[string]any{"Ref": "OutputPrefix"})
	for _, c := range []struct {
		key  string
		days int
	}{
		{defaults(t, tpl, map[string]any{"Ref": "InputPrefix"}) + "cats/tom.jpg", keep},
		{defaults(t, tpl, map[string]any{"Ref": "WatermarkPrefix"}) + "logo.png", keep},
		{"rejected/cats/tom.jpg", keep},
		{out + "thumb/cats/tom.jpg", 1},
		{out + pipeline.ManifestSegment + "cats/tom.jpg.json", 1},
		{out + pipeline.CacheSegment + "uploads/cats/tom.jpg/32268be4/abc", 1},
	} {
		days, markers := 0, false
		for _, r := range rules {
			prefix := ""
			if p := get(t, r, "Prefix"); p != nil {
				prefix = defaults(t, tpl, p)
			}
			if get(t, r, "Status") != "Enabled" || !strings.HasPrefix(c.key, prefix) {
				continue
			}
			if nve := get(t, r, "NoncurrentVersionExpiration"); nve != nil {
				d, err := strconv.Atoi(defaults(t, tpl, get(t, nve, "NoncurrentDays")))
				if err != nil {
					t.Fatalf("rule %v: %v", get(t, r, "Id"), err)
				}
				if days == 0 || d < days {
					days = d
				}
			}
			markers = markers || get(t, r, "ExpiredObjectDeleteMarker") == "true"
		}
		if days != c.days {
			t.Errorf("%s: noncurrent versions kept %d days, want %d", c.key, days, c.days)
		}
		if !markers {
			t.Errorf("%s: delete markers left alone are never removed", c.key)
		}
	}
	for _, r := range rules {
		// S3 refuses a rule that expires current versions by age and
		// removes delete markers.
		if get(t, r, "ExpirationInDays") != nil && get(t, r, "ExpiredObjectDeleteMarker") != nil {
			t.Errorf("rule %v has both ExpirationInDays and ExpiredObjectDeleteMarker", get(t, r, "Id"))
		}
	}
}

// Only the stack's bucket may send to the event queue.
func TestQueuePolicyIsScopedToTheBucket(t *testing.T) {
	tpl := load(t)
	for _, s := range list(get(t, tpl, "Resources", "EventQueuePolicy", "Properties", "PolicyDocument", "Statement")) {
		if get(t, s, "Effect") != "Allow" {
			continue
		}
		cond := fmt.Sprint(get(t, s, "Condition"))
		if fmt.Sprint(get(t, s, "Principal")) != "map[Service:s3.amazonaws.com]" || get(t, s, "Action") != "sqs:SendMessage" ||
			!strings.Contains(cond, "aws:SourceArn:map[Fn::Sub:arn:${AWS::Partition}:s3:::${BucketName}]") ||
			!strings.Contains(cond, "aws:SourceAccount:map[Ref:AWS::AccountId]") {
			t.Errorf("queue policy statement not scoped to the bucket: %v", s)
		}
	}
}

// The task role reads originals and watermarks and writes variants, and
// nothing else: no S3 action on "*", object actions only under the three
// prefixes, no deletes of originals, only reads of watermarks.
func TestTaskRoleIsLimitedToThePrefixes(t *testing.T) {
	tpl := load(t)
	stmts := list(get(t, tpl, "Resources", "TaskRole", "Properties", "Policies", 0, "PolicyDocument", "Statement"))
	if managed := get(t, tpl, "Resources", "TaskRole", "Properties", "ManagedPolicyArns"); managed != nil {
		t.Errorf("managed policies on the task role: %v", managed)
	}
	input := "arn:${AWS::Partition}:s3:::${Bucket}/${InputPrefix}*"
	output := "arn:${AWS::Partition}:s3:::${Bucket}/${OutputPrefix}*"
	marks := "arn:${AWS::Partition}:s3:::${Bucket}/${WatermarkPrefix}*"
	bucket := "arn:${AWS::Partition}:s3:::${Bucket}"
	allowed := map[string]map[string]bool{
		input:  {"s3:GetObject": true, "s3:PutObject": true},
		output: {"s3:GetObject": true, "s3:PutObject": true, "s3:DeleteObject": true},
		marks:  {"s3:GetObject": true},
		bucket: {"s3:ListBucket": true},
	}
	for _, s := range stmts {
		if get(t, s, "Effect") != "Allow" {
			continue
		}
		for _, r := range list(get(t, s, "Resource")) {
			sub, _ := r.(map[string]any)["Fn::Sub"].(string)
			for _, a := range list(get(t, s, "Action")) {
				action := a.(string)
				if !strings.HasPrefix(action, "s3:") || strings.Contains(action, "*") || !allowed[sub][action] {
					t.Errorf("task role allows %s on %v", action, r)
				}
			}
		}
	}
	// Beside S3, only the send of server reconcile --enqueue, to the event
	// queue, and CloudFront's invalidations (TestDeliveryThroughCloudFront).
	// (and, with a ReadyEventBus only, its PutEvents: TestManifestAndReadySignal)
	policies := list(resolve(get(t, tpl, "Resources", "TaskRole", "Properties", "Policies"), nil))
	if len(policies) != 3 || get(t, policies[2], "PolicyName") != "resizer-cloudfront" {
		t.Fatalf("task role has %d policies, want resizer-s3, resizer-reconcile and resizer-cloudfront", len(policies))
	}
	enqueue := list(get(t, policies[1], "PolicyDocument", "Statement"))
	if len(enqueue) != 1 || get(t, enqueue[0], "Action") != "sqs:SendMessage" ||
		fmt.Sprint(get(t, enqueue[0], "Resource")) != "map[Fn::GetAtt:EventQueue.Arn]" {
		t.Errorf("reconcile policy %v", enqueue)
	}
}

// The forwarder reads its secret, writes its logs, takes its events from
// the queue, and has network interfaces in the VPC; nothing else.
func TestForwarderRoleIsNarrow(t *testing.T) {
	tpl := load(t)
	eni := map[string]bool{"ec2:CreateNetworkInterface": true, "ec2:DescribeNetworkInterfaces": true, "ec2:DeleteNetworkInterface": true,
		"ec2:AssignPrivateIpAddresses": true, "ec2:UnassignPrivateIpAddresses": true}
	queue := map[string]bool{"sqs:ReceiveMessage": true, "sqs:DeleteMessage": true, "sqs:GetQueueAttributes": true, "sqs:ChangeMessageVisibility": true}
	stmts := list(get(t, tpl, "Resources", "ForwarderRole", "Properties", "Policies", 0, "PolicyDocument", "Statement"))
	for _, s := range stmts {
		for _, a := range list(get(t, s, "Action")) {
			action := a.(string)
			r := fmt.Sprint(get(t, s, "Resource"))
			switch {
			case action == "secretsmanager:GetSecretValue" && r == fmt.Sprint(map[string]any{"Ref": "WebhookSecret"}):
			case strings.HasPrefix(action, "logs:") && strings.Contains(r, "ForwarderLogGroup"):
			case queue[action] && r == fmt.Sprint(map[string]any{"Fn::GetAtt": "EventQueue.Arn"}):
			case eni[action] && r == "*":
			default:
				t.Errorf("forwarder role allows %s on %s", action, r)
			}
			if strings.HasPrefix(action, "s3:") || strings.Contains(action, "*") {
				t.Errorf("forwarder role reaches %s %s", action, r)
			}
		}
	}
	if get(t, tpl, "Resources", "ForwarderRole", "Properties", "ManagedPolicyArns") != nil {
		t.Error("managed policies on the forwarder role")
	}
}

// The forwarder runs on the architecture of the tasks, from the zip that
// make forwarder builds for it: nothing lets a stack pair an arm64
// function with an amd64 bootstrap (it deploys, then fails every
// invocation).
func TestForwarderFollowsCpuArchitecture(t *testing.T) {
	tpl := load(t)
	want := fmt.Sprint(map[string]any{"Fn::Equals": []any{map[string]any{"Ref": "CpuArchitecture"}, "ARM64"}})
	if got := fmt.Sprint(get(t, tpl, "Conditions", "IsArm")); got != want {
		t.Fatalf("IsArm = %s, want %s", got, want)
	}
	if got := fmt.Sprint(get(t, tpl, "Resources", "TaskDefinition", "Properties", "RuntimePlatform", "CpuArchitecture")); got != "map[Ref:CpuArchitecture]" {
		t.Errorf("the tasks' architecture is %s", got)
	}
	mk, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	built := map[string]bool{}
	for _, line := range strings.Split(string(mk), "\n") {
		if arches, ok := strings.CutPrefix(strings.TrimSpace(line), "@for arch in "); ok {
			arches, _, _ = strings.Cut(arches, ";")
			for _, a := range strings.Fields(arches) {
				built["forwarder-"+a+".zip"] = true
			}
		}
	}
	if !strings.Contains(string(mk), "zip -q -X ../forwarder-$$arch.zip bootstrap") || len(built) == 0 {
		t.Fatalf("make forwarder no longer builds forwarder-ARCH.zip for %v", built)
	}
	for arch, lambda := range map[string][2]string{"X86_64": {"x86_64", "amd64"}, "ARM64": {"arm64", "arm64"}} {
		if !slices.Contains(list(get(t, tpl, "Parameters", "CpuArchitecture", "AllowedValues")), any(arch)) {
			t.Errorf("CpuArchitecture does not allow %s", arch)
		}
		fn := resolve(get(t, tpl, "Resources", "ForwarderFunction", "Properties"), map[string]bool{"IsArm": arch == "ARM64"})
		if got := fmt.Sprint(get(t, fn, "Architectures")); got != "["+lambda[0]+"]" {
			t.Errorf("%s: the function runs on %s, want %s", arch, got, lambda[0])
		}
		zip := "forwarder-" + lambda[1] + ".zip"
		if got, want := fmt.Sprint(get(t, fn, "Code", "S3Key")), fmt.Sprint(map[string]any{"Fn::Sub": "${ForwarderCodePrefix}" + zip}); got != want {
			t.Errorf("%s: the function's code is %s, want %s", arch, got, want)
		}
		if !built[zip] {
			t.Errorf("%s: make forwarder builds no %s (it builds %v)", arch, zip, built)
		}
	}
	for name := range tpl["Parameters"].(map[string]any) {
		if strings.HasPrefix(name, "ForwarderCode") && name != "ForwarderCodeBucket" && name != "ForwarderCodePrefix" {
			t.Errorf("parameter %s may choose the forwarder's code apart from CpuArchitecture", name)
		}
	}
}

// The queue feeds the forwarder as the issue of lost events asked: the
// mapping reports batch failures (else Lambda deletes failed messages),
// its concurrency is bounded, a message comes back only after an
// invocation that holds it may have ended, and a message that keeps
// failing reaches the dead-letter queue.
func TestEventSourceMapping(t *testing.T) {
	tpl := load(t)
	m := get(t, tpl, "Resources", "ForwarderEventSource", "Properties")
	if get(t, m, "FunctionResponseTypes", 0) != "ReportBatchItemFailures" {
		t.Error("the mapping does not report batch item failures")
	}
	if fmt.Sprint(get(t, m, "EventSourceArn")) != fmt.Sprint(map[string]any{"Fn::GetAtt": "EventQueue.Arn"}) {
		t.Errorf("the mapping reads %v", get(t, m, "EventSourceArn"))
	}
	if fmt.Sprint(get(t, m, "ScalingConfig", "MaximumConcurrency")) != fmt.Sprint(map[string]any{"Ref": "ForwarderConcurrency"}) {
		t.Error("the forwarders' concurrency is not bounded")
	}
	q := get(t, tpl, "Resources", "EventQueue", "Properties")
	vis, _ := strconv.Atoi(get(t, q, "VisibilityTimeout").(string))
	timeout, _ := strconv.Atoi(get(t, tpl, "Resources", "ForwarderFunction", "Properties", "Timeout").(string))
	if timeout == 0 || vis < 6*timeout {
		t.Errorf("visibility timeout %d s under six times the function's %d s", vis, timeout)
	}
	if fmt.Sprint(get(t, q, "RedrivePolicy", "deadLetterTargetArn")) != fmt.Sprint(map[string]any{"Fn::GetAtt": "DeadLetterQueue.Arn"}) ||
		get(t, q, "RedrivePolicy", "maxReceiveCount") == nil {
		t.Errorf("no redrive to the dead-letter queue: %v", get(t, q, "RedrivePolicy"))
	}
	dlqRetention, _ := strconv.Atoi(get(t, tpl, "Resources", "DeadLetterQueue", "Properties", "MessageRetentionPeriod").(string))
	retention, _ := strconv.Atoi(get(t, q, "MessageRetentionPeriod").(string))
	if dlqRetention <= retention {
		t.Errorf("dead letters kept %d s, not longer than the queue's %d s (a message keeps its first enqueue time)", dlqRetention, retention)
	}
	if len(resources(t, tpl, "AWS::Lambda::EventInvokeConfig")) != 0 || len(resources(t, tpl, "AWS::Lambda::Permission")) != 0 {
		t.Error("the function is still invoked directly")
	}
}

// With a domain, the forwarder and the output use it (the load balancer's
// own name has no certificate), and a Route 53 alias points it at the
// load balancer.
func TestTheDomainIsUsedEverywhere(t *testing.T) {
	tpl := load(t)
	want := fmt.Sprint(map[string]any{"Fn::If": []any{"HasDomain", map[string]any{"Fn::Sub": "https://${DomainName}"}}})
	want = strings.TrimSuffix(want, "]]") // the branch without a domain follows
	for _, v := range []any{
		get(t, tpl, "Resources", "ForwarderFunction", "Properties", "Environment", "Variables", "RESIZER_URL"),
		get(t, tpl, "Outputs", "ServiceURL", "Value"),
	} {
		if !strings.HasPrefix(fmt.Sprint(v), want) {
			t.Errorf("%v does not use the domain", v)
		}
	}
	rec := get(t, tpl, "Resources", "DomainRecord")
	if get(t, rec, "Condition") != "HasDomain" || get(t, rec, "Properties", "Name") == nil ||
		fmt.Sprint(get(t, rec, "Properties", "AliasTarget", "DNSName")) != fmt.Sprint(map[string]any{"Fn::GetAtt": "LoadBalancer.DNSName"}) {
		t.Errorf("no alias of the domain to the load balancer: %v", rec)
	}
	if fmt.Sprint(get(t, tpl, "Resources", "HttpsListener", "Properties", "Certificates")) == "" {
		t.Error("no certificate on the HTTPS listener")
	}
}

// Every alarm notifies someone, and the alarms cover the event path.
func TestEveryAlarmNotifies(t *testing.T) {
	tpl := load(t)
	topic := fmt.Sprint([]any{map[string]any{"Ref": "AlarmTopic"}})
	watched := map[string]bool{}
	balancers := map[string]bool{} // those whose own 5xx have an alarm
	alarms := resources(t, tpl, "AWS::CloudWatch::Alarm")
	for name, a := range alarms {
		p := get(t, a, "Properties")
		if fmt.Sprint(get(t, p, "AlarmActions")) != topic || fmt.Sprint(get(t, p, "OKActions")) != topic {
			t.Errorf("%s notifies %v / %v", name, get(t, p, "AlarmActions"), get(t, p, "OKActions"))
		}
		if m, ok := get(t, p, "MetricName").(string); ok {
			watched[m] = true
			if m == "HTTPCode_ELB_5XX_Count" {
				for _, d := range get(t, p, "Dimensions").([]any) {
					if get(t, d, "Name") == "LoadBalancer" {
						balancers[fmt.Sprint(get(t, d, "Value"))] = true
					}
				}
			}
		}
		metrics, _ := get(t, p, "Metrics").([]any)
		for _, m := range metrics {
			if stat, ok := m.(map[string]any)["MetricStat"]; ok {
				watched[get(t, stat, "Metric", "MetricName").(string)] = true
			}
		}
	}
	for _, m := range []string{"ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage", "HTTPCode_ELB_5XX_Count",
		"HTTPCode_Target_5XX_Count", "UnHealthyHostCount", "Errors", "Throttles", "MemoryUtilization"} {
		if !watched[m] {
			t.Errorf("no alarm on %s", m)
		}
	}
	// Both ways in: the public one, and the forwarder's internal one.
	for _, lb := range []string{"LoadBalancer", "InternalLoadBalancer"} {
		if !balancers[fmt.Sprint(map[string]any{"Fn::GetAtt": lb + ".LoadBalancerFullName"})] {
			t.Errorf("no alarm on %s's own 5xx (alarms on %v)", lb, balancers)
		}
	}
	if get(t, tpl, "Resources", "AlarmSubscription", "Properties", "Protocol") != "email" {
		t.Error("no email subscription to the alarms")
	}
}

// The internet reaches neither the metrics, nor the webhook, nor the
// contract, nor the readiness report; the internal load balancer serves
// the webhook alone.
func TestPrivatePathsAreNotPublic(t *testing.T) {
	tpl := load(t)
	rule := get(t, tpl, "Resources", "PrivatePathsRule", "Properties")
	paths := fmt.Sprint(get(t, rule, "Conditions", 0, "PathPatternConfig", "Values"))
	for _, p := range []string{"/metrics", "/webhooks/*", "/openapi.yaml", "/readyz"} {
		if !strings.Contains(paths, p) {
			t.Errorf("%s reachable through the public load balancer", p)
		}
	}
	if n := len(get(t, rule, "Conditions", 0, "PathPatternConfig", "Values").([]any)); n > 5 {
		t.Errorf("%d path patterns in one rule: a load balancer takes 5 at most", n)
	}
	if get(t, rule, "Actions", 0, "Type") != "fixed-response" || get(t, rule, "Priority") != "1" {
		t.Errorf("the private paths are not answered by the load balancer first: %v", rule)
	}
	if fmt.Sprint(get(t, rule, "ListenerArn")) != fmt.Sprint(map[string]any{"Fn::If": []any{"HasDomain",
		map[string]any{"Ref": "HttpsListener"}, map[string]any{"Ref": "HttpListener"}}}) {
		t.Errorf("rule on %v, not on the listener that forwards", get(t, rule, "ListenerArn"))
	}
	internal := get(t, tpl, "Resources", "InternalListener", "Properties")
	if get(t, internal, "DefaultActions", 0, "Type") != "fixed-response" ||
		fmt.Sprint(get(t, tpl, "Resources", "WebhookRule", "Properties", "Conditions", 0, "PathPatternConfig", "Values")) != "[/webhooks/s3]" {
		t.Error("the internal load balancer serves more than the webhook")
	}
	if get(t, tpl, "Resources", "InternalLoadBalancer", "Properties", "Scheme") != "internal" {
		t.Error("the forwarder's load balancer is not internal")
	}
}

// Stack updates leave the task count to autoscaling, which follows the
// queue's backlog per task; tasks drain before they stop; Fargate's
// memory sizes are enforced before deployment.
func TestScalingAndDraining(t *testing.T) {
	tpl := load(t)
	if get(t, tpl, "Resources", "Service", "Properties", "DesiredCount") != nil {
		t.Error("DesiredCount on the service: every stack update resets the count autoscaling chose")
	}
	backlog := fmt.Sprint(get(t, tpl, "Resources", "BacklogScaling", "Properties"))
	for _, want := range []string{"ApproximateNumberOfMessagesVisible", "RunningTaskCount", "waiting / tasks"} {
		if !strings.Contains(backlog, want) {
			t.Errorf("backlog scaling lacks %s", want)
		}
	}
	for _, tg := range []string{"TargetGroup", "InternalTargetGroup"} {
		attrs := fmt.Sprint(get(t, tpl, "Resources", tg, "Properties", "TargetGroupAttributes"))
		if !strings.Contains(attrs, "deregistration_delay.timeout_seconds Value:90") {
			t.Errorf("%s: deregistration delay not past the service's 75 s request bound: %s", tg, attrs)
		}
	}
	rules := fmt.Sprint(tpl["Rules"])
	for _, cpu := range list(get(t, tpl, "Parameters", "TaskCpu", "AllowedValues")) {
		if !strings.Contains(rules, fmt.Sprintf("Fn::Equals:[map[Ref:TaskCpu] %s]", cpu)) {
			t.Errorf("no rule on TaskMemory for TaskCpu %s", cpu)
		}
	}
	if get(t, tpl, "Resources", "S3Endpoint", "Properties", "VpcEndpointType") != "Gateway" {
		t.Error("no S3 gateway endpoint")
	}
}

// ForwarderConcurrency's default gives each processing slot of a full
// fleet at its defaults a forwarder, as its description says: a forwarder
// holds at most one slot, and a task has one per vCPU (the template leaves
// CONCURRENCY to its default, the CPUs the task gets).
func TestForwarderConcurrencyFitsTheFleet(t *testing.T) {
	tpl := load(t)
	number := func(name string) int {
		t.Helper()
		n, err := strconv.Atoi(defaults(t, tpl, map[string]any{"Ref": name}))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return n
	}
	if got, want := number("ForwarderConcurrency"), number("MaxCount")*number("TaskCpu")/1024; got != want {
		t.Errorf("ForwarderConcurrency defaults to %d, want MaxCount x TaskCpu / 1024 = %d", got, want)
	}
	for _, e := range list(resolve(get(t, tpl, "Resources", "TaskDefinition", "Properties", "ContainerDefinitions", 0, "Environment"), allReady)) {
		if name := get(t, e, "Name"); name == "CONCURRENCY" || name == "GOMAXPROCS" {
			t.Errorf("the task sets %s: ForwarderConcurrency's sizing assumes a slot per vCPU", name)
		}
	}
}

// BacklogPerTask's description and the cost model in docs/operations.md
// count with the throughput docs/benchmarks.md measured for whole
// originals with the default variants, not with a figure of their own.
func TestThroughputFiguresAgree(t *testing.T) {
	bench, err := os.ReadFile("../docs/benchmarks.md")
	if err != nil {
		t.Fatal(err)
	}
	var measured string
	for _, line := range strings.Split(string(bench), "\n") {
		if strings.Contains(line, "| the default three (") {
			cells := strings.Split(strings.TrimSuffix(strings.TrimSpace(line), "|"), "|")
			measured = strings.Trim(strings.TrimSpace(cells[len(cells)-1]), "*")
		}
	}
	if _, err := strconv.ParseFloat(measured, 64); err != nil {
		t.Fatalf("no originals/s for the default variants in docs/benchmarks.md (%q)", measured)
	}
	desc := fmt.Sprint(get(t, load(t), "Parameters", "BacklogPerTask", "Description"))
	if !strings.Contains(desc, "about "+measured+" originals") {
		t.Errorf("BacklogPerTask's description does not count with the measured %s originals/s: %s", measured, desc)
	}
	ops, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(ops), "**"+measured+" originals/s**") || !strings.Contains(string(ops), "/ "+measured+" / 3600") {
		t.Errorf("docs/operations.md's cost model does not count with the measured %s originals/s", measured)
	}
}

// Secrets reach the task and the function by reference, never as plain
// environment values.
func TestSecretsAreNotInPlainEnvironment(t *testing.T) {
	tpl := load(t)
	secretish := func(name string) bool {
		return strings.Contains(name, "SECRET") || strings.Contains(name, "KEY") || strings.Contains(name, "PASSWORD")
	}
	c := resolve(get(t, tpl, "Resources", "TaskDefinition", "Properties", "ContainerDefinitions", 0), allReady)
	for _, e := range list(get(t, c, "Environment")) {
		if name := get(t, e, "Name").(string); secretish(name) {
			t.Errorf("task environment holds %s", name)
		}
	}
	injected := map[string]bool{}
	for _, s := range list(get(t, c, "Secrets")) {
		injected[get(t, s, "Name").(string)] = true
	}
	if !injected["API_KEYS"] || !injected["WEBHOOK_SECRETS"] || !injected["URL_SIGNING_KEYS"] {
		t.Errorf("secrets not injected: %v", injected)
	}
	// The ready callback is signed with a secret of its own, which the
	// tasks may read, so that its receiver learns nothing that signs S3
	// events; without a callback there is none.
	for _, s := range list(get(t, c, "Secrets")) {
		if get(t, s, "Name") == "READY_CALLBACK_SECRETS" && fmt.Sprint(get(t, s, "ValueFrom")) != fmt.Sprint(map[string]any{"Ref": "ReadyCallbackSecret"}) {
			t.Errorf("READY_CALLBACK_SECRETS from %v", get(t, s, "ValueFrom"))
		}
	}
	if !injected["READY_CALLBACK_SECRETS"] {
		t.Error("READY_CALLBACK_SECRETS not injected with a callback")
	}
	none := resolve(get(t, tpl, "Resources", "TaskDefinition", "Properties", "ContainerDefinitions", 0), map[string]bool{})
	for _, s := range list(get(t, none, "Secrets")) {
		if get(t, s, "Name") == "READY_CALLBACK_SECRETS" {
			t.Error("READY_CALLBACK_SECRETS injected without a callback")
		}
	}
	if got := fmt.Sprint(get(t, tpl, "Resources", "ReadyCallbackSecret", "Condition")); got != "HasReadyCallbackUrl" {
		t.Errorf("the callback's secret exists under %q", got)
	}
	readable := fmt.Sprint(resolve(get(t, tpl, "Resources", "ExecutionRole", "Properties", "Policies"), allReady))
	if !strings.Contains(readable, "ReadyCallbackSecret") {
		t.Errorf("the execution role cannot read the callback's secret: %s", readable)
	}
	for name := range get(t, tpl, "Resources", "ForwarderFunction", "Properties", "Environment", "Variables").(map[string]any) {
		if secretish(name) && name != "WEBHOOK_SECRET_ARN" {
			t.Errorf("forwarder environment holds %s", name)
		}
	}
}

// Only the load balancers reach the tasks, only the forwarder reaches the
// internal one, and the task drains within ECS's stop timeout.
func TestTasksBehindTheLoadBalancer(t *testing.T) {
	tpl := load(t)
	for _, in := range list(get(t, tpl, "Resources", "ServiceSecurityGroup", "Properties", "SecurityGroupIngress")) {
		src := fmt.Sprint(get(t, in, "SourceSecurityGroupId"))
		if (src != fmt.Sprint(map[string]any{"Ref": "LoadBalancerSecurityGroup"}) && src != fmt.Sprint(map[string]any{"Ref": "InternalLoadBalancerSecurityGroup"})) ||
			get(t, in, "CidrIp") != nil {
			t.Errorf("task ingress not limited to the load balancers: %v", in)
		}
	}
	if get(t, tpl, "Resources", "InternalLoadBalancerSecurityGroup", "Properties", "SecurityGroupIngress") != nil {
		t.Error("inline ingress on the internal load balancer")
	}
	for name, in := range resources(t, tpl, "AWS::EC2::SecurityGroupIngress") {
		if fmt.Sprint(get(t, in, "Properties", "SourceSecurityGroupId")) != fmt.Sprint(map[string]any{"Ref": "ForwarderSecurityGroup"}) {
			t.Errorf("%s lets in %v", name, get(t, in, "Properties"))
		}
	}
	if get(t, tpl, "Resources", "Service", "Properties", "NetworkConfiguration", "AwsvpcConfiguration", "AssignPublicIp") != "DISABLED" {
		t.Error("tasks get public IPs")
	}
	if get(t, tpl, "Resources", "TargetGroup", "Properties", "HealthCheckPath") != "/healthz" {
		t.Error("target group health check is not /healthz")
	}
	c := get(t, tpl, "Resources", "TaskDefinition", "Properties", "ContainerDefinitions", 0)
	if get(t, c, "StopTimeout") != "30" || get(t, c, "ReadonlyRootFilesystem") != "true" {
		t.Errorf("stop timeout %v, read-only root %v", get(t, c, "StopTimeout"), get(t, c, "ReadonlyRootFilesystem"))
	}
	if len(resources(t, tpl, "AWS::ApplicationAutoScaling::ScalingPolicy")) < 2 {
		t.Error("no autoscaling on CPU and requests")
	}
}

// Images by URL go through CloudFront: the load balancer serves /img/ only
// with the header CloudFront sends (the same secret on both sides) and
// refuses it otherwise; the cache key is the path, with Accept only for
// format=auto; the task may invalidate this distribution and nothing
// else, and knows its id; cold derived images expire.
func TestDeliveryThroughCloudFront(t *testing.T) {
	tpl := load(t)
	dist := get(t, tpl, "Resources", "Distribution", "Properties", "DistributionConfig")
	origin := get(t, dist, "Origins", 0)
	header := get(t, origin, "OriginCustomHeaders", 0)
	allow := get(t, tpl, "Resources", "DeliveryFromCdnRule", "Properties")
	deny := get(t, tpl, "Resources", "DeliveryDirectRule", "Properties")
	cond := get(t, allow, "Conditions", 1, "HttpHeaderConfig")
	secret := fmt.Sprint(map[string]any{"Fn::Sub": "{{resolve:secretsmanager:${OriginVerifySecret}}}"})
	if get(t, header, "HeaderName") != get(t, cond, "HttpHeaderName") || fmt.Sprint(get(t, header, "HeaderValue")) != secret ||
		fmt.Sprint(get(t, cond, "Values", 0)) != secret {
		t.Errorf("CloudFront sends %v, the load balancer asks for %v", header, cond)
	}
	for name, r := range map[string]any{"allow": allow, "deny": deny} {
		if fmt.Sprint(get(t, r, "Conditions", 0, "PathPatternConfig", "Values")) != "[/img/*]" ||
			fmt.Sprint(get(t, r, "ListenerArn")) != fmt.Sprint(get(t, tpl, "Resources", "PrivatePathsRule", "Properties", "ListenerArn")) {
			t.Errorf("%s rule: %v", name, r)
		}
	}
	ap, _ := strconv.Atoi(get(t, allow, "Priority").(string))
	dp, _ := strconv.Atoi(get(t, deny, "Priority").(string))
	if ap <= 1 || dp <= ap || get(t, deny, "Actions", 0, "FixedResponseConfig", "StatusCode") != "403" {
		t.Errorf("priorities %d, %d; direct requests answered %v", ap, dp, get(t, deny, "Actions"))
	}
	if fmt.Sprint(get(t, origin, "DomainName")) != fmt.Sprint(map[string]any{"Fn::If": []any{"HasDomain",
		map[string]any{"Ref": "DomainName"}, map[string]any{"Fn::GetAtt": "LoadBalancer.DNSName"}}}) {
		t.Errorf("origin %v is not the load balancer", get(t, origin, "DomainName"))
	}

	// The variants' behaviour, from the bucket, is the last
	// (TestVariantsThroughCloudFront).
	behaviors := list(get(t, dist, "CacheBehaviors"))
	if len(behaviors) != 3 || get(t, behaviors[0], "PathPattern") != "/img/*format=auto*" || get(t, behaviors[1], "PathPattern") != "/img/*" {
		t.Fatalf("behaviors %v: the negotiated URLs must come first, then the other images by URL", behaviors)
	}
	behaviors = behaviors[:2]
	headers := func(b any) string {
		ref := get(t, b, "CachePolicyId").(map[string]any)["Ref"].(string)
		p := get(t, tpl, "Resources", ref, "Properties", "CachePolicyConfig", "ParametersInCacheKeyAndForwardedToOrigin")
		if get(t, p, "QueryStringsConfig", "QueryStringBehavior") != "none" || get(t, p, "CookiesConfig", "CookieBehavior") != "none" {
			t.Errorf("%s keys on more than the path: %v", ref, p)
		}
		return fmt.Sprint(get(t, p, "HeadersConfig"))
	}
	if h := headers(behaviors[0]); h != "map[HeaderBehavior:whitelist Headers:[Accept]]" {
		t.Errorf("negotiated images keyed on %s, want Accept only", h)
	}
	for _, b := range []any{behaviors[1], get(t, dist, "DefaultCacheBehavior")} {
		if h := headers(b); h != "map[HeaderBehavior:none]" {
			t.Errorf("fixed-format images keyed on %s", h)
		}
	}
	for _, b := range append(behaviors, get(t, dist, "DefaultCacheBehavior")) {
		if fmt.Sprint(get(t, b, "AllowedMethods")) != "[GET HEAD]" || get(t, b, "ViewerProtocolPolicy") != "redirect-to-https" {
			t.Errorf("behavior %v", b)
		}
	}

	var pol any
	for _, p := range list(resolve(get(t, tpl, "Resources", "TaskRole", "Properties", "Policies"), allReady)) {
		if get(t, p, "PolicyName") == "resizer-cloudfront" {
			pol = get(t, p, "PolicyDocument", "Statement")
		}
	}
	if s := list(pol); len(s) != 1 || get(t, s[0], "Action") != "cloudfront:CreateInvalidation" ||
		fmt.Sprint(get(t, s[0], "Resource")) != fmt.Sprint(map[string]any{"Fn::Sub": "arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/${Distribution}"}) {
		t.Errorf("the task's CloudFront permissions: %v", pol)
	}
	env := map[string]string{}
	for _, e := range list(resolve(get(t, tpl, "Resources", "TaskDefinition", "Properties", "ContainerDefinitions", 0, "Environment"), allReady)) {
		env[get(t, e, "Name").(string)] = fmt.Sprint(get(t, e, "Value"))
	}
	if env["CLOUDFRONT_DISTRIBUTION_ID"] != fmt.Sprint(map[string]any{"Ref": "Distribution"}) {
		t.Errorf("CLOUDFRONT_DISTRIBUTION_ID = %q", env["CLOUDFRONT_DISTRIBUTION_ID"])
	}
	// The variants' paths are invalidated when the distribution serves
	// them: not when VariantsBaseUrl names another origin.
	for _, e := range list(get(t, tpl, "Resources", "TaskDefinition", "Properties", "ContainerDefinitions", 0, "Environment")) {
		if m, ok := e.(map[string]any); ok && m["Name"] == "CLOUDFRONT_INVALIDATE_VARIANTS" {
			if got, want := fmt.Sprint(m["Value"]), fmt.Sprint(map[string]any{"Fn::If": []any{"HasVariantsBaseUrl", "false", "true"}}); got != want {
				t.Errorf("CLOUDFRONT_INVALIDATE_VARIANTS = %s, want %s", got, want)
			}
			env["checked"] = "yes"
		}
	}
	if env["checked"] == "" {
		t.Error("no CLOUDFRONT_INVALIDATE_VARIANTS in the task's environment")
	}

	found := false
	for _, r := range list(get(t, tpl, "Resources", "Bucket", "Properties", "LifecycleConfiguration", "Rules")) {
		if fmt.Sprint(get(t, r, "Prefix")) == fmt.Sprint(map[string]any{"Fn::Sub": "${OutputPrefix}_cache/"}) {
			found = fmt.Sprint(get(t, r, "ExpirationInDays")) == fmt.Sprint(map[string]any{"Ref": "DerivedCacheDays"}) && get(t, r, "Status") == "Enabled"
		}
	}
	if !found {
		t.Error("no lifecycle rule expiring the derived cache")
	}
}

// cachingOptimized is the id of CloudFront's managed cache policy
// CachingOptimized, whose key is the path alone (and the encodings of
// compression): no query string, cookie or other header.
const cachingOptimized = "658327ea-f89d-4fab-a63d-7e88639e58f6"

// The variants and manifests under OutputPrefix, which the manifests name
// and pages poll, are public through the distribution: read from the
// private bucket with CloudFront's own signature (OAC), by a behaviour at
// OutputPrefix's path, HTTPS only, keyed on the path alone. The bucket lets
// this distribution read OutputPrefix and nothing else, and never the
// derived cache, which /img/ serves with signatures. All of it stands or
// falls with the distribution.
func TestVariantsThroughCloudFront(t *testing.T) {
	tpl := load(t)
	dist := get(t, tpl, "Resources", "Distribution").(map[string]any)
	cond, _ := dist["Condition"].(string)
	on := map[string]bool{cond: true, "HasCors": true}
	oac := get(t, tpl, "Resources", "VariantsOriginAccess").(map[string]any)
	if c, _ := oac["Condition"].(string); c != cond {
		t.Errorf("the origin access control's condition %q, the distribution's %q", c, cond)
	}
	if got := fmt.Sprint(get(t, oac, "Properties", "OriginAccessControlConfig")); !strings.Contains(got, "OriginAccessControlOriginType:s3") ||
		!strings.Contains(got, "SigningBehavior:always") || !strings.Contains(got, "SigningProtocol:sigv4") {
		t.Errorf("origin access control %s, want s3, always signed, SigV4", got)
	}

	cfg := resolve(get(t, dist, "Properties", "DistributionConfig"), on)
	var origin any
	for _, o := range list(get(t, cfg, "Origins")) {
		if get(t, o, "Id") == "variants" {
			origin = o
		}
	}
	if origin == nil {
		t.Fatal("no origin for the variants")
	}
	// The URL's path is the object's key: no origin path.
	if fmt.Sprint(get(t, origin, "DomainName")) != "map[Fn::GetAtt:Bucket.RegionalDomainName]" ||
		fmt.Sprint(get(t, origin, "OriginAccessControlId")) != "map[Fn::GetAtt:VariantsOriginAccess.Id]" ||
		get(t, origin, "S3OriginConfig", "OriginAccessIdentity") != "" || get(t, origin, "OriginPath") != nil ||
		get(t, origin, "CustomOriginConfig") != nil {
		t.Errorf("variants origin %v: want the bucket, read through VariantsOriginAccess", origin)
	}

	out := defaults(t, tpl, map[string]any{"Ref": "OutputPrefix"})
	behaviors := list(get(t, cfg, "CacheBehaviors"))
	var b any
	for i, x := range behaviors {
		if get(t, x, "TargetOriginId") == "variants" {
			if b != nil || i != len(behaviors)-1 {
				t.Errorf("behaviour %d of %d reads the bucket: one, after images by URL", i, len(behaviors))
			}
			b = x
		}
	}
	if b == nil {
		t.Fatal("no behaviour reads the variants")
	}
	if p := get(t, b, "PathPattern"); fmt.Sprint(p) != fmt.Sprint(map[string]any{"Fn::Sub": "/${OutputPrefix}*"}) ||
		defaults(t, tpl, p) != "/"+out+"*" {
		t.Errorf("variants behaviour at %v, want OutputPrefix and * (/%s*)", p, out)
	}
	if get(t, b, "CachePolicyId") != cachingOptimized || get(t, b, "OriginRequestPolicyId") != nil {
		t.Errorf("variants cached by %v, sent with %v: want CachingOptimized alone", get(t, b, "CachePolicyId"), get(t, b, "OriginRequestPolicyId"))
	}
	if get(t, b, "ViewerProtocolPolicy") != "https-only" || fmt.Sprint(get(t, b, "AllowedMethods")) != "[GET HEAD]" ||
		get(t, b, "FunctionAssociations") != nil {
		t.Errorf("variants behaviour %v: want HTTPS, GET and HEAD, no function", b)
	}
	// The images by URL are served first: an OutputPrefix of their path
	// would never reach the bucket.
	imgs := strings.Trim(get(t, behaviors[len(behaviors)-2], "PathPattern").(string), "/*") + "/"
	if rules := fmt.Sprint(get(t, tpl, "Rules", "OutputsBesideImages")); !strings.Contains(rules, "Fn::Equals:[map[Ref:OutputPrefix] "+imgs+"]") {
		t.Errorf("no rule keeps OutputPrefix from %s: %s", imgs, rules)
	}

	// Pages of CorsAllowedOrigins poll the manifests from scripts.
	if got := fmt.Sprint(get(t, b, "ResponseHeadersPolicyId")); got != "map[Ref:VariantsCorsPolicy]" {
		t.Errorf("with CORS origins the variants answer with %s", got)
	}
	off := resolve(get(t, dist, "Properties", "DistributionConfig"), map[string]bool{cond: true})
	if got := fmt.Sprint(list(get(t, off, "CacheBehaviors"))[len(behaviors)-1]); strings.Contains(got, "ResponseHeadersPolicyId") {
		t.Errorf("without CORS origins: %s", got)
	}
	cors := get(t, tpl, "Resources", "VariantsCorsPolicy")
	if get(t, cors, "Condition") != "HasCors" ||
		fmt.Sprint(get(t, cors, "Properties", "ResponseHeadersPolicyConfig", "CorsConfig", "AccessControlAllowOrigins", "Items")) != "map[Ref:CorsAllowedOrigins]" ||
		fmt.Sprint(get(t, cors, "Properties", "ResponseHeadersPolicyConfig", "CorsConfig", "AccessControlAllowMethods", "Items")) != "[GET HEAD]" ||
		get(t, cors, "Properties", "ResponseHeadersPolicyConfig", "CorsConfig", "AccessControlAllowCredentials") != "false" {
		t.Errorf("variants CORS %v", cors)
	}

	// The bucket policy, as CloudFront's principal meets it: what it may
	// read, evaluated on keys with the parameters' defaults.
	cloudfront := fmt.Sprint(map[string]any{"Service": "cloudfront.amazonaws.com"})
	source := fmt.Sprint(map[string]any{"StringEquals": map[string]any{"AWS:SourceArn": map[string]any{
		"Fn::Sub": "arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/${Distribution}"}}})
	statements := func(conds map[string]bool) (allow, deny []string) {
		for _, s := range list(resolve(get(t, tpl, "Resources", "BucketPolicy", "Properties", "PolicyDocument", "Statement"), conds)) {
			if fmt.Sprint(get(t, s, "Principal")) != cloudfront {
				continue
			}
			actions := list(get(t, s, "Action"))
			for _, r := range list(get(t, s, "Resource")) {
				sub, _ := r.(map[string]any)["Fn::Sub"].(string)
				arn := strings.NewReplacer("${AWS::Partition}", "aws", "${Bucket}", "photos",
					"${OutputPrefix}", out, "${InputPrefix}", defaults(t, tpl, map[string]any{"Ref": "InputPrefix"})).Replace(sub)
				switch {
				case get(t, s, "Effect") == "Allow":
					if fmt.Sprint(actions) != "[s3:GetObject]" || fmt.Sprint(get(t, s, "Condition")) != source {
						t.Errorf("CloudFront may %v on %s under %v: want s3:GetObject, for this distribution", actions, sub, get(t, s, "Condition"))
					}
					allow = append(allow, arn)
				case get(t, s, "Effect") == "Deny" && (slices.Contains(actions, any("s3:GetObject")) || slices.Contains(actions, any("s3:*"))):
					deny = append(deny, arn)
				}
			}
		}
		return allow, deny
	}
	matches := func(arns []string, key string) bool {
		for _, a := range arns {
			if p, wild := strings.CutSuffix(a, "*"); a == "arn:aws:s3:::photos/"+key || wild && strings.HasPrefix("arn:aws:s3:::photos/"+key, p) {
				return true
			}
		}
		return false
	}
	allow, deny := statements(on)
	for _, c := range []struct {
		key  string
		read bool
	}{
		{out + "thumb/cats/tom.jpg", true},
		{out + "large/cats/a+b.webp", true},
		{out + pipeline.ManifestSegment + "cats/tom.jpg.json", true},
		{out + pipeline.CacheSegment + "uploads/cats/tom.jpg/32268be4/abc", false},
		{out + pipeline.CacheSegment + "uploads/cats/tom.jpg/32268be4/abc.path-0123456789abcdef", false},
		{defaults(t, tpl, map[string]any{"Ref": "InputPrefix"}) + "cats/tom.jpg", false},
		{defaults(t, tpl, map[string]any{"Ref": "WatermarkPrefix"}) + "logo.png", false},
		{"rejected/cats/tom.jpg", false},
	} {
		if got := matches(allow, c.key) && !matches(deny, c.key); got != c.read {
			t.Errorf("CloudFront reads %s: %v, want %v (allowed %v, denied %v)", c.key, got, c.read, allow, deny)
		}
	}
	// S3 bucket policies cannot say "but not": the derived cache is taken
	// out by an explicit deny to CloudFront.
	if want := "arn:aws:s3:::photos/" + out + pipeline.CacheSegment + "*"; !slices.Contains(deny, want) {
		t.Errorf("no deny of %s to CloudFront: %v", want, deny)
	}
	if cond != "" {
		if allow, deny := statements(map[string]bool{}); len(allow)+len(deny) != 0 {
			t.Errorf("without the distribution the bucket lets CloudFront in: %v, %v", allow, deny)
		}
	}
}

// allReady are the conditions of a stack given every parameter of the
// manifests and the ready signal.
var allReady = map[string]bool{"HasVariantsBaseUrl": true, "HasReadyCallbackUrl": true, "HasReadyEventBus": true}

// VariantsBaseUrl, ReadyCallbackUrl and ReadyEventBus reach the task's
// environment when given; otherwise the manifests' URLs start at the
// distribution (TestVariantsBaseURLFallsBackToTheDistribution) and the
// others are absent. The task may put events on the ReadyEventBus only
// when there is one, and on that bus only.
func TestManifestAndReadySignal(t *testing.T) {
	tpl := load(t)
	params := map[string]string{"VariantsBaseUrl": "VARIANTS_BASE_URL", "ReadyCallbackUrl": "READY_CALLBACK_URL", "ReadyEventBus": "READY_EVENT_BUS"}
	for p := range params {
		if d, ok := get(t, tpl, "Parameters", p).(map[string]any)["Default"]; !ok || d != "" {
			t.Errorf("parameter %s: default %v, want empty", p, d)
		}
		cond := "Has" + p
		want := fmt.Sprint(map[string]any{"Fn::Not": []any{map[string]any{"Fn::Equals": []any{map[string]any{"Ref": p}, ""}}}})
		if got := fmt.Sprint(get(t, tpl, "Conditions", cond)); got != want {
			t.Errorf("condition %s = %s, want %s", cond, got, want)
		}
	}
	env := func(conds map[string]bool) map[string]string {
		env := map[string]string{}
		c := resolve(get(t, tpl, "Resources", "TaskDefinition", "Properties", "ContainerDefinitions", 0), conds)
		for _, e := range list(get(t, c, "Environment")) {
			env[get(t, e, "Name").(string)] = fmt.Sprint(get(t, e, "Value"))
		}
		return env
	}
	// putEvents lists the task role's statements that allow an events:
	// action, with their resources.
	putEvents := func(conds map[string]bool) []string {
		var out []string
		for _, p := range list(resolve(get(t, tpl, "Resources", "TaskRole", "Properties", "Policies"), conds)) {
			for _, s := range list(get(t, p, "PolicyDocument", "Statement")) {
				for _, a := range list(get(t, s, "Action")) {
					if strings.HasPrefix(a.(string), "events:") || a == "*" {
						out = append(out, fmt.Sprintf("%s %s on %v", get(t, s, "Effect"), a, get(t, s, "Resource")))
					}
				}
			}
		}
		return out
	}

	none, all := env(nil), env(allReady)
	for p, name := range params {
		if v, ok := none[name]; ok && p != "VariantsBaseUrl" {
			t.Errorf("without %s, the task's environment has %s=%s", p, name, v)
		}
		if got, want := all[name], fmt.Sprint(map[string]any{"Ref": p}); got != want {
			t.Errorf("with %s, the task's %s = %q, want %q", p, name, got, want)
		}
	}
	if got := putEvents(nil); len(got) != 0 {
		t.Errorf("without a ReadyEventBus the task role allows %v", got)
	}
	// The other parameters alone give no permission either.
	if got := putEvents(map[string]bool{"HasVariantsBaseUrl": true, "HasReadyCallbackUrl": true}); len(got) != 0 {
		t.Errorf("without a ReadyEventBus the task role allows %v", got)
	}
	bus := fmt.Sprint(map[string]any{"Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/${ReadyEventBus}"})
	if got := putEvents(allReady); len(got) != 1 || got[0] != "Allow events:PutEvents on "+bus {
		t.Errorf("with a ReadyEventBus the task role allows %v, want PutEvents on %s only", got, bus)
	}
}

// Without a VariantsBaseUrl, the manifests' URLs and srcset start at this
// stack's distribution, which serves OutputPrefix from the bucket
// (TestVariantsThroughCloudFront): the ImagesURL output and a slash, a
// base the service takes; the VariantsBaseURL output says where they
// start either way.
func TestVariantsBaseURLFallsBackToTheDistribution(t *testing.T) {
	tpl := load(t)
	env := func(conds map[string]bool) string {
		for _, e := range list(resolve(get(t, tpl, "Resources", "TaskDefinition", "Properties", "ContainerDefinitions", 0, "Environment"), conds)) {
			if get(t, e, "Name") == "VARIANTS_BASE_URL" {
				return fmt.Sprint(get(t, e, "Value"))
			}
		}
		return ""
	}
	images := get(t, tpl, "Outputs", "ImagesURL", "Value").(map[string]any)["Fn::Sub"].(string)
	distribution := fmt.Sprint(map[string]any{"Fn::Sub": images + "/"})
	if images != "https://${Distribution.DomainName}" {
		t.Errorf("ImagesURL is %s, not the distribution's HTTPS URL", images)
	}
	given := fmt.Sprint(map[string]any{"Ref": "VariantsBaseUrl"})
	for _, c := range []struct {
		conds map[string]bool
		want  string
	}{{nil, distribution}, {map[string]bool{"HasVariantsBaseUrl": true}, given}} {
		if got := env(c.conds); got != c.want {
			t.Errorf("with %v, the task's VARIANTS_BASE_URL = %s, want %s", c.conds, got, c.want)
		}
		if got := fmt.Sprint(resolve(get(t, tpl, "Outputs", "VariantsBaseURL", "Value"), c.conds)); got != c.want {
			t.Errorf("with %v, the VariantsBaseURL output = %s, want %s", c.conds, got, c.want)
		}
	}
	if _, err := config.Load(func(k string) string {
		if k == "VARIANTS_BASE_URL" {
			return "https://d111111abcdef8.cloudfront.net/"
		}
		return ""
	}); err != nil {
		t.Errorf("the distribution's URL as VARIANTS_BASE_URL: %v", err)
	}
}

// The operator's AWS WAF web ACLs, when given, guard the distribution and
// the public load balancer (never the internal one, which only the
// forwarder reaches); without them nothing refers to one.
func TestWebAcls(t *testing.T) {
	tpl := load(t)
	dist := get(t, tpl, "Resources", "Distribution", "Properties", "DistributionConfig")
	if got := resolve(dist, map[string]bool{"HasCloudFrontWebAcl": true}).(map[string]any)["WebACLId"]; fmt.Sprint(got) != fmt.Sprint(map[string]any{"Ref": "CloudFrontWebAclArn"}) {
		t.Errorf("the distribution's web ACL: %v", got)
	}
	if got, ok := resolve(dist, nil).(map[string]any)["WebACLId"]; ok {
		t.Errorf("a web ACL without one given: %v", got)
	}
	assocs := resources(t, tpl, "AWS::WAFv2::WebACLAssociation")
	if len(assocs) != 1 {
		t.Fatalf("%d web ACL associations", len(assocs))
	}
	for _, a := range assocs {
		if a["Condition"] != "HasLoadBalancerWebAcl" || fmt.Sprint(get(t, a, "Properties", "ResourceArn")) != fmt.Sprint(map[string]any{"Ref": "LoadBalancer"}) ||
			fmt.Sprint(get(t, a, "Properties", "WebACLArn")) != fmt.Sprint(map[string]any{"Ref": "LoadBalancerWebAclArn"}) {
			t.Errorf("association %v", a)
		}
	}
	for _, p := range []string{"CloudFrontWebAclArn", "LoadBalancerWebAclArn"} {
		if get(t, tpl, "Parameters", p, "Default") != "" {
			t.Errorf("%s is not optional", p)
		}
	}
}

// The tasks read the client from the load balancers' X-Forwarded-For
// (TRUSTED_PROXIES), so that MAX_PER_CLIENT counts clients and not the
// balancer; the default is a list the service accepts.
func TestTasksTrustTheLoadBalancers(t *testing.T) {
	tpl := load(t)
	env := map[string]string{}
	for _, e := range list(resolve(get(t, tpl, "Resources", "TaskDefinition", "Properties", "ContainerDefinitions", 0, "Environment"), allReady)) {
		env[get(t, e, "Name").(string)] = fmt.Sprint(get(t, e, "Value"))
	}
	if env["TRUSTED_PROXIES"] != fmt.Sprint(map[string]any{"Ref": "TrustedProxyCidrs"}) {
		t.Fatalf("TRUSTED_PROXIES = %q", env["TRUSTED_PROXIES"])
	}
	def := get(t, tpl, "Parameters", "TrustedProxyCidrs", "Default").(string)
	if _, err := config.Load(func(k string) string {
		if k == "TRUSTED_PROXIES" {
			return def
		}
		return ""
	}); err != nil {
		t.Fatalf("the default %q: %v", def, err)
	}
}

// The dashboard graphs webhook outcomes that the service records.
func TestDashboardOutcomesExist(t *testing.T) {
	body := fmt.Sprint(get(t, load(t), "Resources", "Dashboard", "Properties", "DashboardBody"))
	i := strings.Index(body, `"WebhookRecords", "Outcome", `)
	if i < 0 {
		t.Fatal("no webhook outcomes on the dashboard")
	}
	row := body[i : strings.Index(body[i:], `["${Namespace}", "Shed"]`)+i]
	known := map[string]bool{"error": true, "ignored": true}
	for _, s := range []pipeline.Status{pipeline.StatusProcessed, pipeline.StatusUpToDate, pipeline.StatusLoopGuard,
		pipeline.StatusSuperseded, pipeline.StatusRejected, pipeline.StatusDeleted} {
		known[string(s)] = true
	}
	n := 0
	for _, part := range strings.Split(row, `"`) {
		if part != "" && strings.Trim(part, "abcdefghijklmnopqrstuvwxyz_") == "" {
			n++
			if !known[part] {
				t.Errorf("the dashboard graphs outcome %q, which the service never records", part)
			}
		}
	}
	if n < 3 {
		t.Errorf("%d outcomes found in %s", n, row)
	}
}

// A page that uploads straight to the bucket and polls for the manifest
// can do so: the bucket's CORS rule lets its script read the upload's
// ETag, and the distribution keeps the 403 of a manifest not yet written
// for a second, not CloudFront's default 10.
func TestBrowserCanWaitForTheManifest(t *testing.T) {
	tpl := load(t)
	cors := resolve(get(t, tpl, "Resources", "Bucket", "Properties", "CorsConfiguration"), map[string]bool{"HasCors": true})
	if got := fmt.Sprint(get(t, cors, "CorsRules", 0, "ExposedHeaders")); got != "[ETag]" {
		t.Errorf("the bucket's CORS exposes %s, want [ETag]", got)
	}
	errs := list(get(t, tpl, "Resources", "Distribution", "Properties", "DistributionConfig", "CustomErrorResponses"))
	ttl := map[string]string{}
	for i := range errs {
		ttl[fmt.Sprint(get(t, errs[i], "ErrorCode"))] = fmt.Sprint(get(t, errs[i], "ErrorCachingMinTTL"))
	}
	// And the service's own passing refusals (503 with Retry-After: 1, a
	// 504 of a slow render) are asked again after a second too.
	for _, code := range []string{"403", "500", "502", "503", "504"} {
		if ttl[code] != "1" {
			t.Errorf("the distribution keeps a %s for %q s, want 1 (all: %v)", code, ttl[code], errs)
		}
	}
}

// S3 matches a notification's prefix filter against the key as its events
// spell it, URL-encoded (a space as +, other characters but a few as %XX),
// so a prefix with any other character would be written into the filter
// as it is and match no key at all: no event, and no variant, ever. The
// parameter takes only the characters S3 leaves as they are.
func TestInputPrefixMatchesTheKeysOfEvents(t *testing.T) {
	tpl := load(t)
	re, err := regexp.Compile(get(t, tpl, "Parameters", "InputPrefix", "AllowedPattern").(string))
	if err != nil {
		t.Fatal(err)
	}
	if d := get(t, tpl, "Parameters", "InputPrefix", "Default").(string); !re.MatchString(d) {
		t.Errorf("the default %q is refused", d)
	}
	for _, p := range []string{"uploads/", "in-box_2.0/", "a/b/", "Photos/2026/"} {
		if !re.MatchString(p) {
			t.Errorf("%q refused", p)
		}
		if enc := strings.ReplaceAll(url.QueryEscape(p), "%2F", "/"); enc != p {
			t.Errorf("%q taken, but its events spell it %q", p, enc)
		}
	}
	for _, p := range []string{"my uploads/", "a+b/", "téléchargements/", "dt=2026/", "(1)/", "a%20b/", "a:b/", "/uploads/", "uploads"} {
		if re.MatchString(p) {
			t.Errorf("%q taken: S3's events spell it %q, which its filter would not match", p, strings.ReplaceAll(url.QueryEscape(p), "%2F", "/"))
		}
	}
}
