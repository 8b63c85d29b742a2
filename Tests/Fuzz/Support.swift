// What every fuzz harness shares: a reader that takes fields off the front of the
// fuzz input. Past the end every read answers zeros (and `bytes` fewer bytes), so
// any input, however short, is a complete one and libFuzzer never wastes a run on
// "too short". Fields are little-endian, as everything Curio stores.
//
// Each harness is compiled with this file alone (Tests/Fuzz/fuzz-host.sh); the
// harness defines the entry point, `LLVMFuzzerTestOneInput`, with `@_cdecl`.

struct FuzzInput {
    let bytes: UnsafeRawBufferPointer
    private(set) var position = 0

    init(_ data: UnsafePointer<UInt8>, _ size: Int) {
        bytes = UnsafeRawBufferPointer(start: data, count: size)
    }

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    var isAtEnd: Bool { position >= bytes.count }
    var remaining: Int { max(0, bytes.count - position) }

    mutating func byte() -> UInt8 {
        guard position < bytes.count else { return 0 }
        defer { position += 1 }
        return bytes[position]
    }

    mutating func integer<Value: FixedWidthInteger>(_: Value.Type = Value.self) -> Value {
        var value: Value = 0
        for index in 0..<MemoryLayout<Value>.size { value |= Value(truncatingIfNeeded: byte()) << (8 * index) }
        return value
    }

    mutating func bool() -> Bool { byte() & 1 != 0 }

    /// Up to `count` bytes (fewer at the end of the input).
    mutating func bytes(_ count: Int) -> UnsafeRawBufferPointer {
        let taken = min(max(count, 0), remaining)
        defer { position += taken }
        return UnsafeRawBufferPointer(rebasing: bytes[min(position, bytes.count)..<min(position, bytes.count) + taken])
    }

    /// Everything not read yet.
    mutating func rest() -> UnsafeRawBufferPointer { bytes(remaining) }

    /// A value of a plain-data type made of the next bytes (zeros past the end).
    mutating func value<Value: BitwiseCopyable>(_: Value.Type) -> Value {
        let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: MemoryLayout<Value>.size,
                                                             alignment: MemoryLayout<Value>.alignment)
        defer { storage.deallocate() }
        storage.initializeMemory(as: UInt8.self, repeating: 0)
        let source = bytes(MemoryLayout<Value>.size)
        UnsafeMutableRawBufferPointer(rebasing: storage[0..<source.count]).copyMemory(from: source)
        return storage.load(as: Value.self)
    }
}
