// Package contract reads the contracts between services: for each job type,
// its versions and the JSON Schema of each version's payload.
//
// Contracts are written in the topology file under the key contracts, or
// in contracts files it includes:
//
//	# topology.yaml
//	contracts:
//	  include: [contracts/*.yaml]   # relative to this file
//	  types:
//	    trip.cancel:
//	      versions:
//	        1:
//	          schema:
//	            type: object
//	            required: [trip_id]
//	            properties:
//	              trip_id: {type: string}
//
//	# contracts/trips.yaml
//	types:
//	  trip.book:
//	    description: Book a trip for a passenger.
//	    versions:
//	      1: {schema: {...}, deprecated: true}
//	      2: {schema: {...}}
//
// A schema is JSON Schema (draft 2020-12) written in YAML, limited to the
// keywords that map onto MessagePack values and onto Go types: type,
// properties, required, additionalProperties, items, enum, const, default,
// minimum, maximum, exclusiveMinimum, exclusiveMaximum, minLength,
// maxLength, minItems, maxItems, pattern, format, title, description,
// deprecated, examples and $comment; keys starting with "x-" are kept and
// ignored. Any other keyword is refused with the position of the key, so a
// schema never means less than it says.
//
// Load reads a topology file or a contracts file into a Set. A Set answers
// which schema a job of a type and version follows (Lookup), validates
// payloads against it (Set.Validate, which broker and worker call through
// their validator options), and is what `warren contract check`, `warren
// generate go` and `warren asyncapi` read. docs/contracts.md and
// docs/versioning.md describe the format and the rules of change.
package contract
