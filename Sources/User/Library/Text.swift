// Small conversions the user library's clients keep needing.

extension String {
    /// A String from a StaticString (the ABI names its errors and states with them).
    public init(_ text: StaticString) {
        self = String(decoding: UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount),
                      as: UTF8.self)
    }
}

/// `text`'s UTF-8 as the raw bytes the system calls take (a name, a path, arguments),
/// valid during `body`.
public func withUTF8Bytes<R, E: Error>(_ text: String, _ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
    let count = text.utf8.count
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(count, 1), alignment: 1)
    defer { buffer.deallocate() }
    for (index, byte) in text.utf8.enumerated() { buffer[index] = byte }
    return try body(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
}

// The system calls the test and workload programs make by name, with Strings.
extension System {
    /// Starts `program` with `arguments`.
    public static func spawn(_ program: String, arguments: String) throws(SyscallError) -> TaskID {
        try withUTF8Bytes(program) { name throws(SyscallError) in
            try withUTF8Bytes(arguments) { text throws(SyscallError) in try spawn(name, arguments: text) }
        }
    }

    /// The restart count of the running instance of `program` (0 if none runs).
    public static func restarts(of program: String) -> Int {
        let found: TaskID? = withUTF8Bytes(program) { name in try? lookup(name) }
        guard let found, let info = try? taskInfo(slot: found.index) else { return 0 }
        return Int(info.restarts)
    }
}
