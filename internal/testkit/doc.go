// Package testkit holds the waiting helpers warren's tests share: poll a
// condition, wait for a value on a channel or a WaitGroup, wait for a
// queue to fill, and dial the test broker through broker.Dial. Each fails
// the test after its timeout, naming what it waited for, instead of
// hanging the suite.
//
// testkit is test scaffolding, never imported by product code.
//
// How tests find the broker, unique names and cleanup are in
// internal/brokertest; testkit builds on it. (brokertest cannot import
// broker: broker's own in-package tests use it.)
package testkit
