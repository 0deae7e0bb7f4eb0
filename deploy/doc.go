// Package deploy holds the AWS CloudFormation template of the service
// (cloudformation.yaml). It has no code; its test checks the template's
// security properties, the wiring of its event path (the queue, the
// mapping, the domain, the alarms), the lifetimes of the bucket's old
// versions, and that its sizing defaults and descriptions agree with the
// code, the Makefile and the measured figures, which a linter cannot know.
package deploy
