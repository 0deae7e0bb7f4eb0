// Package deploy holds the AWS CloudFormation template of the service
// (cloudformation.yaml). It has no code; its test checks the template's
// security properties and the wiring of its event path (the queue, the
// mapping, the domain, the alarms), which a linter cannot know.
package deploy
