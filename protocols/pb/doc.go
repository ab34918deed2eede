// Package pb holds the protobuf messages of Kith's wire protocols. The
// .proto source sits beside the generated code, which is committed;
// kith.proto says how to regenerate it.
package pb
