// Package unique refuses a second job with the same key while the first
// is pending, retrying or running, as asynq's and River's unique jobs do.
//
// A Publisher takes the key in a Store (package pgunique, PostgreSQL;
// package redisunique, Redis; Memory for tests) before it publishes the
// job, and a second Publish with the key gets a *DuplicateError
// (ErrDuplicate) naming the job that holds it. The job carries its key in
// its warren-unique-key header, and the Releaser, an observer of the
// worker pools that run the job, releases the key when the job reaches a
// final state: it succeeded, was dead-lettered or rejected, or expired.
// Retries keep the key; dead letters release it (so a dead-lettered job
// does not keep its key for ever), and a job replayed from the dead-letter
// queue holds it no more.
//
// The key's TTL bounds how long it is held when the job's final state is
// never seen: a job purged from its queue by an operator, a worker without
// the Releaser. Make it longer than the job can take from publish to its
// last retry.
package unique
