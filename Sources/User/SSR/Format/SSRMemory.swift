// SSRMemory: a format's storage in ordinary memory — a server's SSR window, or a
// buffer in a test.

import Synchronization

public struct SSRMemory: SSRStorage {
    public let base: UnsafeMutableRawPointer
    public let count: Int

    public init(base: UnsafeMutableRawPointer, count: Int) {
        self.base = base
        self.count = count
    }

    public init(_ buffer: UnsafeMutableRawBufferPointer) {
        self.init(base: buffer.baseAddress!, count: buffer.count)
    }

    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    /// An aligned doubleword store (`sd`), never split into bytes.
    @inline(__always)
    public func store(_ word: UInt64, at offset: Int) {
        (base + offset).assumingMemoryBound(to: UInt64.self).pointee = word
    }

    /// A release store: every store before it is ordered before it (on RISC-V,
    /// `fence rw,w; sd`), and the compiler may not sink earlier stores past it.
    @inline(__always)
    public func publish(_ word: UInt64, at offset: Int) {
        (base + offset).assumingMemoryBound(to: Atomic<UInt64>.self).pointee.store(word, ordering: .releasing)
    }
}
