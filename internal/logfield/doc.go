// Package logfield names the fields of warren's log lines, once, for
// every package that logs (broker, worker, daemon): a log query for
// job_id or queue finds the lines of all of them.
//
// logfield holds constants only and imports nothing. Every zerolog field
// key in warren's product packages is one of them, which its test checks;
// tests may spell the names out, since they check the names.
package logfield
