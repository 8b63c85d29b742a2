import NetworkCore
import SSRFormat
import Testing

@Suite struct NetworkClientStateTests {
    @Test func opensFillSlotsInOrderWithIncreasingGenerations() throws {
        var state = NetworkClientState.initial
        #expect(NetworkClientState.isConsistent(state))
        for slot in 0..<NetworkLimits.socketsPerClient {
            let handle = try state.open(.udp)
            #expect(handle.slot == slot)
            #expect(handle.generation == UInt32(slot + 1))
            #expect(handle.rawValue != 0)
            #expect(state.slot(of: handle) == slot)
            #expect(state.sockets[slot].kind == SocketKind.udp.rawValue)
            #expect(!state.sockets[slot].isBound)
        }
        #expect(throws: NetworkError.tooManySockets) { try state.open(.udp) }
        #expect(state.nextGeneration == UInt32(NetworkLimits.socketsPerClient + 1), "a refused open uses no generation")
        #expect(NetworkClientState.isConsistent(state))
    }

    @Test func aClosedSocketsHandleNoLongerResolves() throws {
        var state = NetworkClientState.initial
        let first = try state.open(.udp)
        let second = try state.open(.udp)
        state.bind(slot: first.slot, port: 5000)
        state.close(slot: first.slot)
        #expect(state.sockets[first.slot] == .free)
        #expect(state.slot(of: first) == nil)
        #expect(state.slot(of: second) == 1)
        let reused = try state.open(.udp)
        #expect(reused.slot == first.slot, "the first free slot")
        #expect(reused != first)
        #expect(state.slot(of: first) == nil, "the old handle does not name the new socket")
        #expect(state.slot(of: reused) == first.slot)
        #expect(!state.sockets[reused.slot].isBound && state.sockets[reused.slot].localPort == 0)
        #expect(NetworkClientState.isConsistent(state))
    }

    @Test func handlesThatNameNothingDoNotResolve() throws {
        var state = NetworkClientState.initial
        let handle = try state.open(.udp)
        #expect(state.slot(of: SocketHandle(rawValue: 0)) == nil)
        #expect(state.slot(of: SocketHandle(slot: 1, generation: handle.generation)) == nil, "a free slot")
        #expect(state.slot(of: SocketHandle(slot: 0, generation: handle.generation + 1)) == nil)
        #expect(state.slot(of: SocketHandle(slot: 0, generation: 0)) == nil)
    }

    @Test func generationWrapsFromTheMaximumToOne() throws {
        var state = NetworkClientState.initial
        state.nextGeneration = SocketHandle.maxGeneration - 1
        #expect(NetworkClientState.isConsistent(state))
        let a = try state.open(.udp)
        let b = try state.open(.udp)
        let c = try state.open(.udp)
        #expect(a.generation == SocketHandle.maxGeneration - 1)
        #expect(b.generation == SocketHandle.maxGeneration)
        #expect(c.generation == 1)
        #expect(state.nextGeneration == 2)
        #expect(Set([a, b, c]).count == 3)
        #expect(state.slot(of: b) == 1)
        #expect(b.rawValue >> 5 == SocketHandle.maxGeneration)
        #expect(NetworkClientState.isConsistent(state))
    }

    /// A state with every kind of record in it: bound, unbound and free slots.
    func sample() throws -> NetworkClientState {
        var state = NetworkClientState.initial
        for _ in 0..<4 { _ = try state.open(.udp) }
        state.bind(slot: 0, port: 53)
        state.bind(slot: 2, port: 49152)
        state.sockets[0].sent = 7
        state.sockets[2].received = 9
        state.close(slot: 3)
        return state
    }

    @Test func isConsistentRejectsEachDamagedField() throws {
        let good = try sample()
        #expect(NetworkClientState.isConsistent(good))
        let damage: [(String, (inout NetworkClientState) -> Void)] = [
            ("reserved word of the state", { $0.reserved = 1 }),
            ("nextGeneration 0", { $0.nextGeneration = 0 }),
            ("nextGeneration above the maximum", { $0.nextGeneration = SocketHandle.maxGeneration + 1 }),
            ("a timeout in a free slot", { $0.sockets[5].receiveTimeout = 1 }),
            ("a cookie key on a socket that does not listen", { $0.sockets[0].cookieKey = 1 }),
            ("unknown kind", { $0.sockets[1].kind = 3 }),
            ("unknown kind 255", { $0.sockets[0].kind = 255 }),
            ("flag other than bound", { $0.sockets[1].flags = 2 }),
            ("flag other than bound, on a bound socket", { $0.sockets[0].flags |= 0x80 }),
            ("port set but not bound", { $0.sockets[1].localPort = 80 }),
            ("bound with port 0", { $0.sockets[1].flags = SocketRecord.boundFlag }),
            ("bound socket's port cleared", { $0.sockets[0].localPort = 0 }),
            ("generation 0", { $0.sockets[1].generation = 0 }),
            ("generation above the maximum", { $0.sockets[1].generation = SocketHandle.maxGeneration + 1 }),
            ("same port bound twice", { $0.sockets[2].localPort = 53 }),
            ("free slot with a generation", { $0.sockets[3].generation = 4 }),
            ("free slot with flags", { $0.sockets[3].flags = 1 }),
            ("free slot with a port", { $0.sockets[3].localPort = 1 }),
            ("free slot with counters", { $0.sockets[7].sent = 1 }),
            ("free slot with counters (received)", { $0.sockets[7].received = 1 }),
        ]
        for (name, damageIt) in damage {
            var state = good
            damageIt(&state)
            #expect(!NetworkClientState.isConsistent(state), "\(name)")
        }
        // Any one bit set anywhere in a free slot.
        #expect(good.sockets[9].isFree)
        for bit in 0..<8 * MemoryLayout<SocketRecord>.size {
            var state = good
            withUnsafeMutableBytes(of: &state.sockets[9]) { $0[bit / 8] |= 1 << UInt8(bit % 8) }
            #expect(!NetworkClientState.isConsistent(state), "bit \(bit) of a free slot")
        }
        // The same port in two clients is fine (the server's port table refuses it);
        // within one client two unbound sockets both have port 0.
        var twoUnbound = NetworkClientState.initial
        _ = try twoUnbound.open(.udp)
        _ = try twoUnbound.open(.udp)
        #expect(NetworkClientState.isConsistent(twoUnbound))
    }

    /// Random open/bind/close sequences (as the server makes them: bind only an
    /// unbound socket, to a port no other socket of the client holds) only reach
    /// consistent states, and handles keep naming what they named.
    @Test(arguments: [UInt64(1), 2, 3, 0xC0FFEE])
    func everyReachableStateIsConsistent(seed: UInt64) throws {
        var random = SplitMix(seed: seed)
        var state = NetworkClientState.initial
        if seed == 3 { state.nextGeneration = SocketHandle.maxGeneration - 20 }
        var open: [SocketHandle] = []
        var closed: [SocketHandle] = []
        for step in 0..<5000 {
            switch random.below(3) {
            case 0:
                if open.count == NetworkLimits.socketsPerClient {
                    #expect(throws: NetworkError.tooManySockets) { try state.open(.udp) }
                } else {
                    let handle = try state.open(.udp)
                    #expect(!open.contains(handle) && !closed.suffix(NetworkLimits.socketsPerClient).contains(handle))
                    open.append(handle)
                }
            case 1:
                guard !open.isEmpty else { continue }
                let handle = open[random.below(open.count)]
                let slot = try #require(state.slot(of: handle))
                guard !state.sockets[slot].isBound else { continue }
                let port = UInt16(1 + random.below(20))
                let taken = (0..<NetworkLimits.socketsPerClient).contains { state.sockets[$0].isBound && state.sockets[$0].localPort == port }
                if !taken { state.bind(slot: slot, port: port) }
            default:
                guard !open.isEmpty else { continue }
                let handle = open.remove(at: random.below(open.count))
                state.close(slot: try #require(state.slot(of: handle)))
                closed.append(handle)
            }
            guard NetworkClientState.isConsistent(state) else {
                Issue.record("step \(step): inconsistent")
                return
            }
            for handle in open where state.slot(of: handle) != handle.slot {
                Issue.record("step \(step): \(handle) lost")
                return
            }
            for handle in closed.suffix(NetworkLimits.socketsPerClient) where state.slot(of: handle) != nil {
                Issue.record("step \(step): closed \(handle) resolves")
                return
            }
        }
    }

    /// The server refuses to start when its state does not fit the SSR (system.toml's
    /// `ssr = 8`, passed as `regionBytes`): committed in two copies, 2 KiB of sockets
    /// need more than 4 KiB.
    @Test func theStateFitsTheConfiguredRegion() {
        #expect(SSRFormat<NetworkClientState, SSRMemory>.requiredBytes <= 8192)
        #expect(SSRFormat<NetworkClientState, SSRMemory>.requiredBytes > 4096)
    }

    @Test func theLayoutIsAsDocumented() {
        #expect(MemoryLayout<SocketRecord>.size == 64)
        #expect(MemoryLayout<SocketRecord>.offset(of: \.localPort) == 2)
        #expect(MemoryLayout<SocketRecord>.offset(of: \.generation) == 4)
        #expect(MemoryLayout<SocketRecord>.offset(of: \.tcpState) == 24)
        #expect(MemoryLayout<SocketRecord>.offset(of: \.remotePort) == 28)
        #expect(MemoryLayout<SocketRecord>.offset(of: \.remoteAddress) == 32)
        #expect(MemoryLayout<SocketRecord>.offset(of: \.sendWindow) == 44)
        #expect(MemoryLayout<SocketRecord>.offset(of: \.cookieKey) == 48)
        #expect(MemoryLayout<SocketRecord>.offset(of: \.receiveTimeout) == 56)
        #expect(MemoryLayout<SocketRecord>.offset(of: \.sendTimeout) == 60)
        #expect(MemoryLayout<NetworkClientState>.size == 2056)
        #expect(MemoryLayout<NetworkClientState>.offset(of: \.nextGeneration) == 0)
        #expect(MemoryLayout<NetworkClientState>.offset(of: \.sockets) == NetworkClientState.socketsOffset)
    }

    /// Only the sockets up to the last one in use are stored in the SSR; the rest of
    /// the state is zero, which the format checks and which this relies on.
    @Test func theSignificantBytesEndWithTheLastSocketInUse() throws {
        var state = NetworkClientState.initial
        #expect(withUnsafePointer(to: state) { NetworkClientState.significantBytes(of: $0) } == 8)
        let first = try state.open(.udp)
        let second = try state.open(.tcp)
        #expect(withUnsafePointer(to: state) { NetworkClientState.significantBytes(of: $0) } == 8 + 2 * 64)
        state.close(slot: first.slot)
        #expect(withUnsafePointer(to: state) { NetworkClientState.significantBytes(of: $0) } == 8 + 2 * 64, "slot 1 is still in use")
        state.close(slot: second.slot)
        #expect(withUnsafePointer(to: state) { NetworkClientState.significantBytes(of: $0) } == 8)
        for _ in 0..<NetworkLimits.socketsPerClient { _ = try state.open(.udp) }
        #expect(withUnsafePointer(to: state) { NetworkClientState.significantBytes(of: $0) } == MemoryLayout<NetworkClientState>.size)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 8192, alignment: 4096)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0)
        let format = SSRFormat<NetworkClientState, SSRMemory>(storage: SSRMemory(buffer), layoutVersion: 2, owner: 3)
        var one = NetworkClientState.initial
        _ = try one.open(.tcp)
        format.commit(state: one, significantBytes: withUnsafePointer(to: one) { NetworkClientState.significantBytes(of: $0) }, requestID: 1,
                      reply: SSRReply())
        guard case .committed(let commit) = format.loadCommit() else {
            Issue.record("the commit did not load")
            return
        }
        #expect(commit.storedStateBytes == 72)
        #expect(NetworkClientState.isConsistent(format.state(of: commit)))
        #expect(format.state(of: commit).sockets[0] == one.sockets[0] && format.state(of: commit).nextGeneration == 2)
    }
}
