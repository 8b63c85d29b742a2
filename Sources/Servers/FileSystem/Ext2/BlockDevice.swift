// The engine's only window on the disk. It is a generic parameter, never an
// existential, so the embedded build specialises every call and the host tests
// can slide in a file-backed device or one that "crashes" after N writes.
//
// Requests are sector-aligned and at most one 4 KiB block, the unit the storage
// server moves in one request. A write is assumed to land whole or not at all
// (the crash model is "the server dies between two device writes"); nothing else
// about atomicity is assumed, and the engine never relies on two writes landing
// in any order other than the one it issues them in.

import FileSystemCore

public protocol BlockDevice {
    /// Size of the device in bytes (a multiple of 512).
    var byteCount: UInt64 { get }
    /// `byteOffset` and `buffer.count` are multiples of 512; `buffer.count <= 4096`.
    mutating func read(at byteOffset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(FileSystemError)
    /// Same alignment rules as `read`. Returns once the device has accepted the data.
    mutating func write(at byteOffset: UInt64, from buffer: UnsafeRawBufferPointer) throws(FileSystemError)
    /// Returns once everything written before is durable.
    mutating func flush() throws(FileSystemError)
}
