package deploy

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
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
	b := get(t, tpl, "Resources", "Bucket", "Properties")
	for _, k := range []string{"BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"} {
		if get(t, b, "PublicAccessBlockConfiguration", k) != "true" {
			t.Errorf("public access: %s is not true", k)
		}
	}
	if get(t, b, "BucketEncryption", "ServerSideEncryptionConfiguration", 0, "ServerSideEncryptionByDefault", "SSEAlgorithm") == nil {
		t.Error("no default encryption")
	}
	confs := list(get(t, b, "NotificationConfiguration", "LambdaConfigurations"))
	if len(confs) == 0 {
		t.Fatal("no notification to the forwarder")
	}
	for i, c := range confs {
		rule := get(t, c, "Filter", "S3Key", "Rules", 0)
		if get(t, rule, "Name") != "prefix" || fmt.Sprint(get(t, rule, "Value")) != fmt.Sprint(map[string]any{"Ref": "InputPrefix"}) {
			t.Errorf("notification %d is not filtered by the input prefix: %v", i, rule)
		}
	}
	if ns := get(t, b, "NotificationConfiguration"); len(ns.(map[string]any)) != 1 {
		t.Errorf("notifications besides the forwarder's: %v", ns)
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
}

// The forwarder reads its secret, writes its logs and its dead letters.
func TestForwarderRoleReadsOnlyItsSecret(t *testing.T) {
	tpl := load(t)
	stmts := list(get(t, tpl, "Resources", "ForwarderRole", "Properties", "Policies", 0, "PolicyDocument", "Statement"))
	for _, s := range stmts {
		for _, a := range list(get(t, s, "Action")) {
			action := a.(string)
			r := fmt.Sprint(get(t, s, "Resource"))
			switch {
			case action == "secretsmanager:GetSecretValue" && r == fmt.Sprint(map[string]any{"Ref": "WebhookSecret"}):
			case strings.HasPrefix(action, "logs:") && strings.Contains(r, "ForwarderLogGroup"):
			case action == "sqs:SendMessage" && strings.Contains(r, "ForwarderDeadLetterQueue"):
			default:
				t.Errorf("forwarder role allows %s on %s", action, r)
			}
			if strings.HasPrefix(action, "s3:") || r == "*" {
				t.Errorf("forwarder role reaches %s %s", action, r)
			}
		}
	}
	if get(t, tpl, "Resources", "ForwarderRole", "Properties", "ManagedPolicyArns") != nil {
		t.Error("managed policies on the forwarder role")
	}
	if d := get(t, tpl, "Resources", "ForwarderInvokeConfig", "Properties", "DestinationConfig", "OnFailure", "Destination"); d == nil {
		t.Error("no failure destination: undeliverable events would be dropped")
	}
}

// Secrets reach the task and the function by reference, never as plain
// environment values.
func TestSecretsAreNotInPlainEnvironment(t *testing.T) {
	tpl := load(t)
	secretish := func(name string) bool {
		return strings.Contains(name, "SECRET") || strings.Contains(name, "KEY") || strings.Contains(name, "PASSWORD")
	}
	c := get(t, tpl, "Resources", "TaskDefinition", "Properties", "ContainerDefinitions", 0)
	for _, e := range list(get(t, c, "Environment")) {
		if name := get(t, e, "Name").(string); secretish(name) {
			t.Errorf("task environment holds %s", name)
		}
	}
	injected := map[string]bool{}
	for _, s := range list(get(t, c, "Secrets")) {
		injected[get(t, s, "Name").(string)] = true
	}
	if !injected["API_KEYS"] || !injected["WEBHOOK_SECRETS"] {
		t.Errorf("secrets not injected: %v", injected)
	}
	for name := range get(t, tpl, "Resources", "ForwarderFunction", "Properties", "Environment", "Variables").(map[string]any) {
		if secretish(name) && name != "WEBHOOK_SECRET_ARN" {
			t.Errorf("forwarder environment holds %s", name)
		}
	}
}

// Only the load balancer reaches the tasks, and the task drains within
// ECS's stop timeout.
func TestTasksBehindTheLoadBalancer(t *testing.T) {
	tpl := load(t)
	for _, in := range list(get(t, tpl, "Resources", "ServiceSecurityGroup", "Properties", "SecurityGroupIngress")) {
		if fmt.Sprint(get(t, in, "SourceSecurityGroupId")) != fmt.Sprint(map[string]any{"Ref": "LoadBalancerSecurityGroup"}) || get(t, in, "CidrIp") != nil {
			t.Errorf("task ingress not limited to the load balancer: %v", in)
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
