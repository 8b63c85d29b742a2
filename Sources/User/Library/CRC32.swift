// CRC-32 (IEEE 802.3, the zlib/PNG polynomial), so a program inside Curio and a
// test on the host can compare file contents by a number they compute the same way.
// Table-driven, one byte per step; the table is built on first use.

public struct CRC32: Sendable {
    nonisolated(unsafe) private static var table: UnsafeMutablePointer<UInt32>?

    private static func lookupTable() -> UnsafeMutablePointer<UInt32> {
        if let table { return table }
        let made = UnsafeMutablePointer<UInt32>.allocate(capacity: 256)
        for index in 0..<256 {
            var value = UInt32(index)
            for _ in 0..<8 { value = value & 1 != 0 ? 0xEDB8_8320 ^ (value >> 1) : value >> 1 }
            made[index] = value
        }
        table = made
        return made
    }

    private var state: UInt32 = 0xFFFF_FFFF

    public init() {}

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        let table = Self.lookupTable()
        var value = state
        for byte in bytes { value = table[Int((value ^ UInt32(byte)) & 0xFF)] ^ (value >> 8) }
        state = value
    }

    public var value: UInt32 { state ^ 0xFFFF_FFFF }
}
