// Package pb holds the protobuf wire forms of Kith's signed identity records
// (profiles, friendship attestations, revocations, share seals and
// introductions). The .proto source sits beside the generated code, which is
// committed; identity.proto says how to regenerate it.
package pb
