// Package deploy holds the AWS CloudFormation template of the service
// (cloudformation.yaml). It has no code; its test checks the template's
// security properties, which a linter cannot know.
package deploy
