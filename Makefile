# Curio's build, run and test entry points. `make help` lists them.
#
# SwiftPM compiles every module (for the host in `swift test`, and cross-compiled
# for riscv64 with toolset-riscv64.json); this Makefile links the riscv64 objects
# into the kernel and the programs with our own linker scripts, packs the programs
# into the boot image with mkimage, and runs QEMU.

SWIFT      ?= swift
# e2fsprogs live in /usr/sbin, which is not on every user's PATH.
export PATH := $(PATH):/usr/sbin:/sbin
TOOLCHAIN  ?= $(dir $(shell readlink -f $(shell command -v swift)))
LLD        := $(TOOLCHAIN)ld.lld
OBJCOPY    := $(TOOLCHAIN)llvm-objcopy
# The boot image packs each program without its debug information: the debug
# sections hold the build's absolute paths, and what the kernel loads must not
# depend on where the repository was cloned (a fault campaign's seed replays a run
# only on identical bytes). They also cost 28 MB of the machine's memory. The full
# ELFs stay in build/programs for gdb.
PACKED     = $(BUILD)/programs/packed
QEMU       ?= qemu-system-riscv64
BUILD      := build
TRIPLE     := riscv64-none-none-eabi
RV_SCRATCH := .build-riscv64
RV_OUT     := $(RV_SCRATCH)/$(TRIPLE)/release
EMBEDDED_LIB := $(TOOLCHAIN)../lib/swift/embedded/$(TRIPLE)
RV_BUILD   := $(SWIFT) build -c release --triple $(TRIPLE) --toolset toolset-riscv64.json --scratch-path $(RV_SCRATCH)

# Programs in the boot image: the SwiftPM module of each (system.toml names them).
PROGRAMS   := ConsoleServer Shell Crashme PingServer Bench Binder RogueServer TimerServer TimerServerNext TimerClient \
              TimerTest ConfigServer StorageServer FileSystemServer FileSystemServerNext FileCopy TCPSave FileSystemTest FileSystemBench SyscallFuzzer DMAProbe \
              NetworkServer UDPEcho TCPEcho HTTPServer HTTPFetch NetworkBench NetTest
# Libraries linked into every program (--gc-sections drops what a program does not use).
USER_LIBRARIES := UserArch Freestanding CurioUser CurioABI ConsoleCore ConsoleAPI SSRFormat SSRServer TimerAPI TimerCore \
                  TimerService FileSystemService \
                  ConfigAPI Virtio StorageCore StorageAPI FileSystemCore Ext2 FileSystemAPI NetworkCore NetworkAPI HTTPCore
# Every module cross-built for riscv64 (the embedded build of each is part of `make test`).
EMBEDDED_MODULES := CurioABI KernelCore Kernel CurioUser ConsoleCore ConsoleAPI SSRFormat SSRServer TimerAPI TimerCore \
                    TimerService FileSystemService \
                    ConfigAPI Virtio StorageCore StorageAPI FileSystemCore Ext2 FileSystemAPI NetworkCore NetworkAPI HTTPCore \
                    $(PROGRAMS)
KERNEL_LIBRARIES := KernelArch Freestanding Kernel KernelCore CurioABI

MEMORY     ?= 128M
QEMU_FLAGS := -machine virt -m $(MEMORY) -smp 1 -nographic -bios default \
              -global virtio-mmio.force-legacy=false -kernel $(BUILD)/kernel.elf
APPEND     := $(if $(CMDS),-append "$(CMDS)")

# The disk `make run` boots with: by default an ext2 image built from the disk/
# folder (rebuilt only when that folder changes, so your writes stay until then);
# DISK=path/to/image.ext2 boots with your own image instead, and writes to it.
DEFAULT_DISK := $(BUILD)/disk.img
DISK       ?= $(DEFAULT_DISK)
DISK_FLAGS  = -drive file=$(DISK),format=raw,if=none,id=disk0 -device virtio-blk-device,drive=disk0
# The network: QEMU user networking with restrict=on, so the guest reaches nothing but
# QEMU's own virtual gateway (10.0.2.2, which answers ping), and HTTP_PORT on
# 127.0.0.1 reaches Curio's web server (httpd on port 80, which the shell starts when
# it boots without a script). The device
# sits in virtio-mmio slot 0, where the network server looks for it.
HTTP_PORT  ?= 8080
NET_FLAGS   = -netdev user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:$(HTTP_PORT)-:80 \
              -device virtio-net-device,netdev=n0,bus=virtio-mmio-bus.0

.PHONY: all help deps build kernel-nossr kernel-baseline kernel-dmaprobe embedded run debug test test-host test-embedded test-integration bench profile campaign campaign-replay soak soak-replay fuzz fuzz-host clean

all: build

help:
	@echo "make run [CMDS='ps; echo hi']  build and boot Curio (CMDS: run these shell commands, then power off)"
	@echo "make run DISK=image.ext2       boot with your own ext2 image (default: build/disk.img from disk/)"
	@echo "make test                     host unit tests, embedded build of every module, QEMU integration tests"
	@echo "make bench                    instruction counts: kernel paths, and fs/storage with vs without SSRs"
	@echo "make profile CMDS='...' [DISK_SIZE=32M PHASE=3]  instructions per program and function while CMDS run"
	@echo "make campaign [SERVER=timer|fs|storage|net FAULTS=a,b TRIGGERS=request,time,execution RUNS=20 JOBS=n SEED=s]"
	@echo "                              fault-injection campaign, SSRs vs the baseline: build/campaign-SERVER.{csv,md,svg}"
	@echo "make campaign-replay RUN=id [CSV=build/campaign-timer.csv]  boot one run of a campaign again, print its console"
	@echo "make soak [SERVER=timer|fs|storage|net FAULTS=a,b BOOTS=1|HOURS=h INJECTIONS=100 EVERY=1100ms WINDOW=t JOBS=n SEED=s]"
	@echo "                              faults injected continuously, one boot per fault kind: build/soak-SERVER.{csv,md}"
	@echo "make soak-replay BOOT=id [SOAK_CSV=build/soak-timer.csv]  boot one boot of a soak again, print its console"
	@echo "make fuzz [SECONDS=0 SEED=n CALLS=1000000]  syscall fuzzer: 4 processes at once while servers restart"
	@echo "make fuzz-host [FUZZ_SECONDS=60 FUZZ_TARGETS='ext2 elf']  libFuzzer + ASan on every parser of untrusted bytes"
	@echo "make debug                    boot QEMU halted, waiting for gdb-multiarch"
	@echo "make deps                     install QEMU and the other tools (as root, with apt-get)"

# Install what the build and the tests need. As root we install; otherwise we say how.
DEB_PACKAGES := qemu-system-misc e2fsprogs curl netcat-openbsd
deps:
	@missing=""; \
	command -v $(QEMU) >/dev/null || missing="$$missing qemu-system-misc"; \
	command -v mke2fs >/dev/null || missing="$$missing e2fsprogs"; \
	command -v curl >/dev/null || missing="$$missing curl"; \
	command -v nc >/dev/null || missing="$$missing netcat-openbsd"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "missing:$$missing -- run: sudo apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi

embedded:
	@for module in $(EMBEDDED_MODULES); do \
	  $(RV_BUILD) --target $$module 2>&1 | grep -v -E '^(Building for production|\[[0-9]+/[0-9]+\]|Build of target)' ; \
	  test $${PIPESTATUS[0]} -eq 0 || exit 1; \
	done
SHELL := /bin/bash

objects = $(wildcard $(RV_OUT)/$(1).build/*.o)

build: embedded
	@mkdir -p $(BUILD)/programs $(PACKED)
	@for program in $(PROGRAMS); do \
	  $(LLD) -T Sources/User/Arch/user.ld --gc-sections -X -o $(BUILD)/programs/$$program.elf \
	    $(foreach lib,$(USER_LIBRARIES),$(RV_OUT)/$(lib).build/*.o) $(RV_OUT)/$$program.build/*.o \
	    $(EMBEDDED_LIB)/libswiftUnicodeDataTables.a || exit 1; \
	  $(OBJCOPY) --strip-debug $(BUILD)/programs/$$program.elf $(PACKED)/$$program.elf || exit 1; \
	done
	@$(SWIFT) build --product mkimage -q
	@$$($(SWIFT) build --show-bin-path)/mkimage --system system.toml --elf-dir $(PACKED) --out $(BUILD)/system.img
	@$(OBJCOPY) -I binary -O elf64-littleriscv --rename-section .data=.bootimage,alloc,load,readonly,data,contents \
	  $(BUILD)/system.img $(BUILD)/system-image.o
	@$(LLD) -T Sources/Kernel/Arch/kernel.ld --gc-sections -X -o $(BUILD)/kernel.elf \
	  $(foreach lib,$(KERNEL_LIBRARIES),$(RV_OUT)/$(lib).build/*.o) $(BUILD)/system-image.o
	@echo "built $(BUILD)/kernel.elf ($$(stat -c %s $(BUILD)/kernel.elf) bytes)"

$(DEFAULT_DISK): $(shell find disk -type f 2>/dev/null)
	@mkdir -p $(BUILD)
	@rm -f $@
	@mke2fs -q -t ext2 -b 1024 -L curio -d disk $@ 32M
	@echo "built $@ from disk/ (ext2, 32 MiB)"

run: deps build $(if $(filter $(DEFAULT_DISK),$(DISK)),$(DEFAULT_DISK))
	@test -f "$(DISK)" || { echo "no disk image at $(DISK)"; exit 1; }
	@$(if $(CMDS),true,echo "Curio's web server: http://127.0.0.1:$(HTTP_PORT)/ (try: curl http://127.0.0.1:$(HTTP_PORT)/README.txt)")
	@$(QEMU) $(QEMU_FLAGS) $(DISK_FLAGS) $(NET_FLAGS) $(APPEND)

debug: deps build $(if $(filter $(DEFAULT_DISK),$(DISK)),$(DEFAULT_DISK))
	@echo "QEMU is waiting for gdb. In another terminal:"
	@echo "  gdb-multiarch $(BUILD)/kernel.elf -ex 'target remote :1234'"
	@echo "(apt-get install gdb-multiarch if missing; 'add-symbol-file $(BUILD)/programs/Shell.elf' for a program)"
	@$(QEMU) $(QEMU_FLAGS) $(DISK_FLAGS) $(NET_FLAGS) $(APPEND) -s -S

test: deps test-host build test-integration

test-host:
	$(SWIFT) test --skip IntegrationTests

test-integration: build kernel-baseline kernel-dmaprobe
	CURIO_KERNEL=$(abspath $(BUILD)/kernel.elf) CURIO_BASELINE_KERNEL=$(abspath $(BUILD)/kernel-baseline.elf) \
	  CURIO_DMAPROBE_KERNEL=$(abspath $(BUILD)/kernel-dmaprobe.elf) \
	  $(SWIFT) test --filter IntegrationTests

# A fault-injection campaign (see Sources/Tools/Campaign, `swift run curio-campaign
# --help`): RUNS runs of every fault kind in FAULTS (default all) on every trigger in
# TRIGGERS (default request,time,execution) into SERVER while its clients check every
# answer, JOBS QEMUs at once (default one per core), against the SSR kernel and the
# baseline with the same seeds. Records go to CSV (an interrupted campaign resumes
# from it), the report next to it (.md, .svg). SEED fixes the campaign's seed.
SERVER   ?= timer
RUNS     ?= 20
CSV      ?= $(BUILD)/campaign-$(SERVER).csv
CAMPAIGN_KERNELS = --kernel $(abspath $(BUILD)/kernel.elf) --baseline-kernel $(abspath $(BUILD)/kernel-baseline.elf)
campaign: deps build kernel-baseline
	$(SWIFT) run -q curio-campaign --server $(SERVER) --runs $(RUNS) $(if $(FAULTS),--faults $(FAULTS)) \
	  $(if $(TRIGGERS),--triggers $(TRIGGERS)) $(if $(JOBS),--jobs $(JOBS)) $(if $(SEED),--seed $(SEED)) \
	  $(CAMPAIGN_KERNELS) --csv $(abspath $(CSV)) --markdown $(abspath $(CSV:.csv=.md)) --svg $(abspath $(CSV:.csv=.svg))

# Boots the run RUN of the campaign in CSV again, with its seed, and prints its console.
campaign-replay: deps build kernel-baseline
	@test -n "$(RUN)" || { echo "usage: make campaign-replay RUN=<run id from the CSV> [CSV=$(CSV)]"; exit 2; }
	$(SWIFT) run -q curio-campaign --replay '$(RUN)' --csv $(abspath $(CSV)) $(CAMPAIGN_KERNELS)

# A soak (see `swift run curio-campaign soak --help`): one boot per fault kind in
# FAULTS (default every kind) into SERVER, each arming INJECTIONS faults (default 100),
# one every EVERY of guest time (default 1100ms, as the documented soaks; a server that
# answers between faults is not given up, so 110ms with WINDOW=5000 works too), each
# striking at a random instruction of
# the server's own execution while its clients check every answer; BOOTS rounds of
# boots (default 1) or as many as HOURS allow, against the SSR kernel and the baseline
# with the same seeds. Records go to SOAK_CSV (resumed from), the report beside it.
SOAK_CSV ?= $(BUILD)/soak-$(SERVER).csv
soak: deps build kernel-baseline
	$(SWIFT) run -q curio-campaign soak --server $(SERVER) $(if $(FAULTS),--faults $(FAULTS)) \
	  $(if $(BOOTS),--boots $(BOOTS)) $(if $(HOURS),--hours $(HOURS)) $(if $(INJECTIONS),--injections $(INJECTIONS)) \
	  $(if $(EVERY),--every $(EVERY)) $(if $(WINDOW),--window $(WINDOW)) $(if $(JOBS),--jobs $(JOBS)) $(if $(SEED),--seed $(SEED)) \
	  $(CAMPAIGN_KERNELS) --csv $(abspath $(SOAK_CSV)) --markdown $(abspath $(SOAK_CSV:.csv=.md))

# Boots the boot BOOT of the soak in SOAK_CSV again, with its seed, and prints its console.
soak-replay: deps build kernel-baseline
	@test -n "$(BOOT)" || { echo "usage: make soak-replay BOOT=<boot id from the CSV> [SOAK_CSV=$(SOAK_CSV)]"; exit 2; }
	$(SWIFT) run -q curio-campaign soak --replay '$(BOOT)' --csv $(abspath $(SOAK_CSV)) $(CAMPAIGN_KERNELS)

# The syscall fuzzer: INSTANCES fuzzer processes, CALLS calls in all, while faults
# restart fs, storage and timer; then no panic, every check passed, free memory back
# (see Sources/Tools/Fuzz). Rounds repeat for SECONDS; SEED (default: a random one,
# printed) makes a run repeatable. Works on a copy of DISK.
SECONDS   ?= 0
CALLS     ?= 1000000
INSTANCES ?= 4
fuzz: deps build $(if $(filter $(DEFAULT_DISK),$(DISK)),$(DEFAULT_DISK))
	$(SWIFT) run -q curio-fuzz --kernel $(abspath $(BUILD)/kernel.elf) --disk $(abspath $(DISK)) \
	  --seconds $(SECONDS) --calls $(CALLS) --instances $(INSTANCES) $(if $(SEED),--seed $(SEED)) --toolchain $(TOOLCHAIN)

# The no-SSR baseline of the filesystem and network benchmarks: the same program
# binaries and kernel objects, packed with `--without-ssr fs,storage,net` (those
# servers then keep their clients' state in their own memory and are not restartable).
NO_SSR_SERVERS := fs,storage,net
kernel-nossr: build
	@$$($(SWIFT) build --show-bin-path)/mkimage --system system.toml --elf-dir $(PACKED) \
	  --out $(BUILD)/system-nossr.img --without-ssr $(NO_SSR_SERVERS)
	@$(OBJCOPY) -I binary -O elf64-littleriscv --rename-section .data=.bootimage,alloc,load,readonly,data,contents \
	  $(BUILD)/system-nossr.img $(BUILD)/system-image-nossr.o
	@$(LLD) -T Sources/Kernel/Arch/kernel.ld --gc-sections -X -o $(BUILD)/kernel-nossr.elf \
	  $(foreach lib,$(KERNEL_LIBRARIES),$(RV_OUT)/$(lib).build/*.o) $(BUILD)/system-image-nossr.o
	@echo "built $(BUILD)/kernel-nossr.elf (without SSRs: $(NO_SSR_SERVERS))"

# The campaigns' baseline: the same binaries with fs, storage, timer and net keeping
# their clients' state in their own memory, still restarted when they fail (as MINIX 3's
# reincarnation server restarts a driver), so a restart loses that state.
BASELINE_SERVERS := fs,storage,timer,net
kernel-baseline: build
	@$$($(SWIFT) build --show-bin-path)/mkimage --system system.toml --elf-dir $(PACKED) \
	  --out $(BUILD)/system-baseline.img --without-ssr $(BASELINE_SERVERS) --restart-without-ssr
	@$(OBJCOPY) -I binary -O elf64-littleriscv --rename-section .data=.bootimage,alloc,load,readonly,data,contents \
	  $(BUILD)/system-baseline.img $(BUILD)/system-image-baseline.o
	@$(LLD) -T Sources/Kernel/Arch/kernel.ld --gc-sections -X -o $(BUILD)/kernel-baseline.elf \
	  $(foreach lib,$(KERNEL_LIBRARIES),$(RV_OUT)/$(lib).build/*.o) $(BUILD)/system-image-baseline.o
	@echo "built $(BUILD)/kernel-baseline.elf (without SSRs, restarted: $(BASELINE_SERVERS))"

# A system of the console and a hostile block driver (Sources/Programs/DMAProbe), for
# the test that the kernel keeps a driver's DMA inside the pages granted to it.
kernel-dmaprobe: build
	@$$($(SWIFT) build --show-bin-path)/mkimage --system Sources/Programs/DMAProbe/dma-probe-system.toml \
	  --elf-dir $(PACKED) --out $(BUILD)/system-dmaprobe.img
	@$(OBJCOPY) -I binary -O elf64-littleriscv --rename-section .data=.bootimage,alloc,load,readonly,data,contents \
	  $(BUILD)/system-dmaprobe.img $(BUILD)/system-image-dmaprobe.o
	@$(LLD) -T Sources/Kernel/Arch/kernel.ld --gc-sections -X -o $(BUILD)/kernel-dmaprobe.elf \
	  $(foreach lib,$(KERNEL_LIBRARIES),$(RV_OUT)/$(lib).build/*.o) $(BUILD)/system-image-dmaprobe.o
	@echo "built $(BUILD)/kernel-dmaprobe.elf (the console and a hostile block driver)"

# The QEMU plugin that counts the filesystem benchmarks' instructions without the
# idle loop (see Sources/Tools/BenchPlugin).
MARKS_PLUGIN := $(BUILD)/instruction-marks.so
$(MARKS_PLUGIN): Sources/Tools/BenchPlugin/instruction-marks.c Sources/Tools/BenchPlugin/qemu-plugin-subset.h
	@mkdir -p $(BUILD)
	@$(TOOLCHAIN)clang -O2 -shared -fPIC -fvisibility=hidden -Wall -Wextra -o $@ $<

# The plugin that counts every instruction for `make profile`, and the profile:
# instructions per program and per function while CMDS run (optionally on a fresh
# ext2 disk of DISK_SIZE, counting only PHASE: see `swift run curio-profile --help`).
PROFILE_PLUGIN := $(BUILD)/pc-profile.so
$(PROFILE_PLUGIN): Sources/Tools/BenchPlugin/pc-profile.c Sources/Tools/BenchPlugin/qemu-plugin-subset.h
	@mkdir -p $(BUILD)
	@$(TOOLCHAIN)clang -O2 -shared -fPIC -fvisibility=hidden -Wall -Wextra -o $@ $<

profile: deps build $(PROFILE_PLUGIN)
	@test -n "$(CMDS)" || { echo "usage: make profile CMDS='run fsbench 1' [DISK_SIZE=32M] [PHASE=3] [TOP=25]"; exit 2; }
	$(SWIFT) run -q curio-profile --commands '$(CMDS)' --kernel $(abspath $(BUILD)/kernel.elf) \
	  --programs $(abspath $(BUILD)/programs) --plugin $(abspath $(PROFILE_PLUGIN)) --output $(abspath $(BUILD)/profile.out) \
	  $(if $(DISK_SIZE),--disk $(DISK_SIZE)) $(if $(PHASE),--phase $(PHASE)) $(if $(TOP),--top $(TOP))

bench: deps build kernel-nossr $(MARKS_PLUGIN)
	$(SWIFT) run -c release curio-bench $(abspath $(BUILD)/kernel.elf) $(abspath $(BUILD)/kernel-nossr.elf) \
	  $(abspath $(MARKS_PLUGIN))

# Coverage-guided fuzzing on the host (libFuzzer and the address sanitizer of the
# Swift toolchain) of every parser of untrusted bytes, FUZZ_SECONDS per target; the
# harnesses, seeds and the build are in Tests/Fuzz (see fuzz-host.sh).
FUZZ_SECONDS ?= 60
fuzz-host:
	SWIFTC=$(TOOLCHAIN)swiftc FUZZ_SECONDS=$(FUZZ_SECONDS) Tests/Fuzz/fuzz-host.sh $(FUZZ_TARGETS)

clean:
	rm -rf $(BUILD) $(RV_SCRATCH)
