// DHCP (RFC 2131, options from RFC 2132): the client side, for an interface whose
// configured address is `dhcp` (`config net.address dhcp`; InterfaceSettings.swift).
//
//   start ──DISCOVER──▶ selecting ──OFFER──▶ requesting ──ACK──▶ bound ──T1──▶ renewing
//                          ▲  │ no offer: again,           │ NAK, or no        │ ACK: bound
//                          │  ▼ 1, 2, 4, 8, 16, 16... s     │ answer 4 times     │ NAK, or the lease
//                          └────────────────────────────────┴───────────────────┘ ran out: start
//
// What it keeps: the transaction id, the offer it is requesting, and the lease it
// holds. All of that is the server's own memory and a restart loses it: the
// restarted server simply asks again, and QEMU's server (like any server that keys
// leases by the client's hardware address) hands out the same address. Connections
// rebuilt from the SSRs wait those few milliseconds as if for lost segments.
//
// The messages are BOOTP's fixed 236 bytes, the magic cookie, then options; every
// message asks to be answered by broadcast (the flags' top bit), because until it
// is bound the interface has no address a unicast could reach. Renewal at T1 (half
// the lease) is broadcast too, with the held address as `ciaddr` (RFC 2131's
// REBINDING form): simpler than tracking the server's address, and every server on
// the link hears it.
//
// Parsing trusts nothing: a reply must be a BOOTREPLY for our hardware address and
// transaction, every option must fit the message, the subnet mask must be contiguous,
// and the lease it describes must pass the same checks as a configured one
// (InterfaceSettings.validated). Anything else is dropped as if never received. A
// lease may name no router or name server: QEMU's server under `restrict=on` offers
// neither, and the interface then reaches its subnet only.

/// What a DHCP message says it is (option 53).
public enum DHCPMessageType: UInt8, Sendable {
    case discover = 1
    case offer = 2
    case request = 3
    case decline = 4
    case acknowledgment = 5
    case negativeAcknowledgment = 6
    case release = 7
}

/// An address lease: the interface's settings, from whom, for how long.
public struct DHCPLease: Equatable, Sendable {
    public var settings: InterfaceSettings
    /// The server identifier (option 54), named in a REQUEST for its offer.
    public var server: IPv4Address
    public var seconds: UInt32

    public init(settings: InterfaceSettings, server: IPv4Address, seconds: UInt32) {
        self.settings = settings
        self.server = server
        self.seconds = seconds
    }
}

/// A reply from a server, checked (`DHCPMessage.parse`).
public struct DHCPReply: Equatable, Sendable {
    public var type: DHCPMessageType
    /// The lease an OFFER or ACK describes (nil for a NAK).
    public var lease: DHCPLease?
}

public enum DHCPMessage {
    public static let serverPort: UInt16 = 67
    public static let clientPort: UInt16 = 68
    static let fixedBytes = 236
    static let magicCookie: UInt32 = 0x6382_5363
    /// BOOTP's minimum message (RFC 1542 §2.1): some servers drop anything shorter.
    public static let minimumBytes = 300
    /// A lease with no time given (option 51) lasts an hour.
    static let defaultLeaseSeconds: UInt32 = 3600

    /// Writes a client message to the start of `buffer`; its length, or nil if it does
    /// not fit. `requested` and `server` are a REQUEST's options 50 and 54, `client`
    /// the address held while renewing (`ciaddr`).
    public static func build(into buffer: UnsafeMutableRawBufferPointer, type: DHCPMessageType, transaction: UInt32,
                             mac: MACAddress, client: IPv4Address = .any, requested: IPv4Address? = nil,
                             server: IPv4Address? = nil) -> Int? {
        guard buffer.count >= minimumBytes else { return nil }
        for index in 0..<minimumBytes { buffer[index] = 0 }
        buffer[0] = 1                                   // BOOTREQUEST
        buffer[1] = 1                                   // Ethernet
        buffer[2] = 6                                   // its address length
        buffer.setUInt32(transaction, at: 4)
        buffer.setUInt16(0x8000, at: 10)                // answer by broadcast
        buffer.setIPv4Address(client, at: 12)
        buffer.setMACAddress(mac, at: 28)
        buffer.setUInt32(magicCookie, at: fixedBytes)
        var position = fixedBytes + 4
        func option(_ code: UInt8, _ bytes: [UInt8]) {
            buffer[position] = code
            buffer[position + 1] = UInt8(bytes.count)
            for (index, byte) in bytes.enumerated() { buffer[position + 2 + index] = byte }
            position += 2 + bytes.count
        }
        func option(_ code: UInt8, _ address: IPv4Address) {
            buffer[position] = code
            buffer[position + 1] = 4
            buffer.setIPv4Address(address, at: position + 2)
            position += 6
        }
        option(53, [type.rawValue])
        if let requested { option(50, requested) }
        if let server { option(54, server) }
        option(55, [1, 3, 6, 51])                       // mask, router, DNS, lease time
        buffer[position] = 255
        return minimumBytes
    }

    /// The reply in `bytes` if it is a well-formed BOOTREPLY to `transaction` for
    /// `mac` of a type a client acts on (OFFER, ACK, NAK), else nil.
    public static func parse(_ bytes: UnsafeRawBufferPointer, transaction: UInt32, mac: MACAddress) -> DHCPReply? {
        guard bytes.count >= fixedBytes + 4, bytes[0] == 2, bytes[1] == 1, bytes[2] == 6,
              bytes.uint32(at: 4) == transaction, bytes.uint32(at: fixedBytes) == magicCookie,
              bytes.macAddress(at: 28) == mac else { return nil }
        var type: DHCPMessageType?
        var mask: UInt32?, router: IPv4Address?, dns: IPv4Address?, server: IPv4Address?, seconds: UInt32?
        var position = fixedBytes + 4
        var ended = false
        while position < bytes.count && !ended {
            let code = bytes[position]
            if code == 0 { position += 1; continue }
            if code == 255 { ended = true; continue }
            guard position + 1 < bytes.count else { return nil }
            let length = Int(bytes[position + 1])
            let data = position + 2
            guard data + length <= bytes.count else { return nil }
            switch code {
            case 53:
                guard length == 1, let value = DHCPMessageType(rawValue: bytes[data]) else { return nil }
                type = value
            case 1:
                guard length == 4 else { return nil }
                mask = bytes.uint32(at: data)
            case 3, 6:
                // Lists of addresses: the first is the one used.
                guard length >= 4, length % 4 == 0 else { return nil }
                if code == 3 { router = bytes.ipv4Address(at: data) } else { dns = bytes.ipv4Address(at: data) }
            case 54:
                guard length == 4 else { return nil }
                server = bytes.ipv4Address(at: data)
            case 51:
                guard length == 4 else { return nil }
                seconds = bytes.uint32(at: data)
            default:
                break
            }
            position = data + length
        }
        guard ended, let type else { return nil }
        switch type {
        case .negativeAcknowledgment:
            return DHCPReply(type: type, lease: nil)
        case .offer, .acknowledgment:
            let address = bytes.ipv4Address(at: 16)
            guard let mask, let prefixLength = prefixLength(ofMask: mask), let server else { return nil }
            let settings: InterfaceSettings
            do throws(InterfaceSettingsError) {
                settings = try InterfaceSettings.validated(address: address, prefixLength: prefixLength,
                                                           gateway: router ?? .any, dnsServer: dns ?? .any)
            } catch {
                return nil
            }
            return DHCPReply(type: type, lease: DHCPLease(settings: settings, server: server,
                                                          seconds: max(seconds ?? defaultLeaseSeconds, 60)))
        default:
            return nil
        }
    }

    /// The prefix length of a contiguous subnet mask (ones, then zeros), or nil.
    static func prefixLength(ofMask mask: UInt32) -> Int? {
        let length = (~mask).leadingZeroBitCount
        return length < 32 && mask == UInt32.max << UInt32(32 - length) ? length : nil
    }
}

/// The client's state machine (the drawing at the top of this file). Time is the
/// caller's clock in ticks; the client says what to send and when to call again.
public struct DHCPClient: Sendable {
    public enum Phase: Equatable, Sendable {
        case selecting
        case requesting(DHCPLease)
        case bound
        case renewing
    }

    /// A message the caller is to broadcast.
    public struct Outgoing: Equatable, Sendable {
        public var type: DHCPMessageType
        public var transaction: UInt32
        public var client: IPv4Address
        public var requested: IPv4Address?
        public var server: IPv4Address?

        public init(type: DHCPMessageType, transaction: UInt32, client: IPv4Address, requested: IPv4Address?,
                    server: IPv4Address?) {
            self.type = type
            self.transaction = transaction
            self.client = client
            self.requested = requested
            self.server = server
        }
    }

    public private(set) var phase = Phase.selecting
    public private(set) var lease: DHCPLease?
    public private(set) var transaction: UInt32
    /// When `timerFired` has something to do.
    public private(set) var deadline: UInt64
    let ticksPerSecond: UInt64
    var attempts = 0
    var boundAt: UInt64 = 0

    static let requestAttempts = 4
    static let longestWaitSeconds: UInt64 = 16

    /// A client about to send its first DISCOVER (`timerFired` at `now` sends it).
    public init(transaction: UInt32, now: UInt64, ticksPerSecond: UInt64) {
        self.transaction = transaction
        self.ticksPerSecond = ticksPerSecond
        deadline = now
    }

    /// What the timer makes the client send, if anything.
    public mutating func timerFired(now: UInt64) -> Outgoing? {
        guard now >= deadline else { return nil }
        switch phase {
        case .selecting:
            return send(.discover, now: now)
        case .requesting(let offer):
            guard attempts < Self.requestAttempts else {
                reset(now: now)
                return send(.discover, now: now)
            }
            return send(.request, requested: offer.settings.address, server: offer.server, now: now)
        case .bound, .renewing:
            guard let lease, now < boundAt &+ UInt64(lease.seconds) &* ticksPerSecond else {
                reset(now: now)
                return send(.discover, now: now)
            }
            if phase == .bound { attempts = 0 }
            phase = .renewing
            return send(.request, client: lease.settings.address, now: now)
        }
    }

    /// Takes a server's reply in; returns the new lease when one was just granted.
    public mutating func received(_ reply: DHCPReply, now: UInt64) -> DHCPLease? {
        switch (phase, reply.type) {
        case (.selecting, .offer):
            guard let offer = reply.lease else { return nil }
            phase = .requesting(offer)
            attempts = 0
            deadline = now
            return nil
        case (.requesting, .acknowledgment), (.renewing, .acknowledgment):
            guard let granted = reply.lease else { return nil }
            lease = granted
            phase = .bound
            boundAt = now
            attempts = 0
            deadline = now &+ UInt64(granted.seconds / 2) &* ticksPerSecond
            return granted
        case (.requesting, .negativeAcknowledgment), (.renewing, .negativeAcknowledgment):
            reset(now: now)
            return nil
        default:
            return nil
        }
    }

    /// Back to the start, with a new transaction: the lease is given up and the next
    /// `timerFired` (due now) sends a DISCOVER.
    mutating func reset(now: UInt64) {
        phase = .selecting
        lease = nil
        attempts = 0
        transaction = transaction &* 1_103_515_245 &+ 12345
        deadline = now
    }

    mutating func send(_ type: DHCPMessageType, client: IPv4Address = .any, requested: IPv4Address? = nil,
                       server: IPv4Address? = nil, now: UInt64) -> Outgoing {
        let wait = min(UInt64(1) << UInt64(min(attempts, 10)), Self.longestWaitSeconds)
        attempts += 1
        deadline = now &+ wait &* ticksPerSecond
        return Outgoing(type: type, transaction: transaction, client: client, requested: requested, server: server)
    }
}
