// Package browsertest drives a real, headless Chromium for the dashboard's
// browser tests, through the DevTools protocol (chromedp).
//
// New starts a browser of its own for one test: a fresh profile in the
// test's temporary directory, a viewport of the size asked for (Desktop,
// 1280×800, or Phone, 390×844, emulated as a touch device), and a context
// that ends with the test or after a timeout. Every helper waits for a
// condition (an element, a text, an expression turning true) rather than
// for a fixed time, and fails the test with what it waited for. Cleanup
// always kills the browser and every process it started, and fails the
// test if one is left.
//
// While the test runs the browser records what would make a page broken
// for its user: console errors, uncaught exceptions, requests that failed
// or were answered 4xx/5xx, and every URL requested. At cleanup a test
// fails on any such problem it did not take (TakeProblems) for its own
// checks; RequestsOutside lists the requests that left the test server.
//
// The browser is $CHROMIUM, else /usr/bin/chromium. Without one the test
// fails, saying how to install it: `sudo apt-get install chromium`, or
// scripts/deps.sh, which CI runs. It never skips.
//
// browsertest is test scaffolding, never imported by product code.
package browsertest
