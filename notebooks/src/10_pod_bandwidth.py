# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown] lang="en"
# # 10 · Pod-to-pod bandwidth with iperf3 (파드 간 속도 측정)
#
# Study notes 2.9. The chapters so far asked *where* a connection goes; this one asks *how much* a
# path between two pods carries per second, its **bandwidth**, measured with **iperf3**: a server
# (`iperf3 -s`) in one pod, a client (`iperf3 -c`) in another, sending as fast as the path allows for a
# few seconds and counting what arrived. By the end you will be able to:
#
# 1. run the study's four tests (TCP on port 5201 for 5 s; UDP reversed with `-R`; both directions at
#    once, which needs `--bidir`, not `-R` as the study says; 30 parallel streams with `-P 30`) and
#    read every line iperf3 prints: interval, transfer, bitrate, retransmits, jitter, loss, `[SUM]`;
# 2. explain every flag the study uses (`-s -c -t -p -u -R --bidir -P -b`), and why a UDP test without
#    `-b` measures nothing about the path (iperf3 sends UDP at 1 Mbit/s unless told otherwise);
# 3. compare the same test on four paths (two pods on one node, on two nodes, through the ClusterIP,
#    through a NodePort from outside) with the hops of each path beside its figure;
# 4. say what these figures mean for a real cluster, and what they do not.

# %% [markdown] lang="ko"
# # 10 · iperf3로 파드 간 속도 측정 (Pod-to-pod bandwidth)
#
# 스터디 노트 2.9에 해당합니다. 지금까지의 장은 연결이 *어디로* 가는지 물었습니다. 이 장은 두 파드(Pod) 사이의
# 경로가 초당 *얼마나* 나르는지, 곧 **대역폭**(bandwidth)을 **iperf3**로 잽니다. 한 파드에서 서버(`iperf3 -s`)가,
# 다른 파드에서 클라이언트(`iperf3 -c`)가 돌고, 클라이언트는 몇 초 동안 경로가 허락하는 만큼 빨리 보내고 도착한
# 양을 셉니다. 이 장을 마치면 다음을 할 수 있습니다.
#
# 1. 스터디의 네 가지 테스트(포트 5201에서 5초 동안 TCP, `-R`로 뒤집은 UDP, 두 방향을 동시에 재는 쌍방향 모드:
#    스터디는 `-R`이라고 하지만 `--bidir`가 필요합니다, `-P 30`으로 스트림 30개)를 실행하고, iperf3가 출력하는 줄
#    하나하나(구간, 전송량, 비트레이트, 재전송, 지터, 손실, `[SUM]`)를 읽을 수 있습니다.
# 2. 스터디가 쓰는 옵션(`-s -c -t -p -u -R --bidir -P -b`)을 모두 설명하고, `-b` 없는 UDP 테스트가 경로에 대해
#    아무것도 재지 않는 이유(따로 말하지 않으면 iperf3는 UDP를 1 Mbit/s로 보냅니다)를 말할 수 있습니다.
# 3. 같은 테스트를 네 경로(한 노드(node) 위의 두 파드, 두 노드에 걸친 두 파드, 클러스터 IP(ClusterIP)를 거쳐, 밖에서 NodePort를
#    거쳐)에서 비교하고, 숫자 옆에 경로마다 거치는 홉(hop)을 놓고 읽을 수 있습니다.
# 4. 이 숫자가 실제 클러스터에 대해 무엇을 말하고 무엇을 말하지 않는지 설명할 수 있습니다.

# %% [markdown] lang="en"
# **What this chapter uses** (besides chapter 00's API card: `lab.sh`, `lab.cluster`, `lab.pods`,
# `lab.copy`, `lab.reset`, `experiments.claim`, `kslab.check`):
#
# - the add-on `data/myk8s/iperf3` (applied by `views_ch10.with_iperf3(lab)`): Deployment
#   `iperf3-server` (one pod on `myk8s-worker`), two client Deployments with label `app=iperf3-client`
#   (`iperf3-client` on `myk8s-worker2`, `iperf3-client-same` on `myk8s-worker`, beside the server), and
#   the Services `iperf3-server` (ClusterIP, 5201 TCP and UDP) and `iperf3-server-nodeport` (NodePort
#   30002). `views_ch10.places(lab)` finds the pods by label: `.server`, `.same` (the client beside it),
#   `.cross` (the client on another node), `.server_node`, `.cross_node`;
# - `lab.iperf3(client, to, "flags")`: one iperf3 test from the client pod to `to` (a pod, a Service, or
#   `NODE:SERVICE` for a NodePort). It returns a `BandwidthRun`: `.result` (the parsed `-J` report, a
#   `kslab.iperf3.IperfResult` with `.sum(direction, side)`, `.directions()`, `.streams`, `.intervals`,
#   `.summary_frame()`), `.path` (the hops: `.path.hops_text()`), `.command` (what you would type in the pod),
#   `.source` (measured now, or the recording it comes from) and `.frame()` (one row per sum, with the path);
# - `kslab.iperf3`: `IperfOptions` (the flags as data: `.flags()`, `.client_argv(host)`, `.target_bitrate`,
#   `IperfOptions.from_argv(argv)`), `STUDY_TESTS` (the study's four tests), the directions `C2S`
#   (client->server) and `S2C` (server->client), `parse(text)` (an `iperf3 ... -J` report, e.g. what
#   `lab.sh` printed, into an `IperfResult`: `.protocol`, `.port`, `.duration`, `.num_streams`, `.reverse`,
#   `.bidir` besides the sums) and `format_text(result)` (the report as iperf3 prints it without `-J`);
#   on sim `lab.sh`'s `.stderr` says which recording an `iperf3 -J` answer comes from;
# - `kslab.bandwidth`: `path_to(lab, client, to)` (the path and its hops without running anything),
#   `compare(lab, [(client, to), ...], flags)` (one row per path);
# - `views_ch10`: `path_targets(places)` (the chapter's four paths), `udp_rates`, `streams_vs_sum`,
#   `direction_rates`, `study_table`, `figures_source(lab)` (measured now, or the recording's label), the
#   `BandwidthPanel`; `charts_ch10`: the charts.
#
# **Where the figures come from.** On `netns` every test runs the real iperf3 (3.12 here) between the
# pods' network namespaces, now. On `sim` there is nothing to measure: the figures are real runs recorded
# on netns (`data/recorded/iperf3.json`, with the command, kernel, iperf3 version, date and the machine's
# load), and every output says so. On `kind` the tests run in the pods with `kubectl exec`. iperf3 runs
# change nothing in the lab: no cell needs `lab.reset()` (if you call it, apply the add-on again with
# `views_ch10.with_iperf3(lab)`).

# %% [markdown] lang="ko"
# **이 장에서 쓰는 것**(00장의 API 카드에 있는 `lab.sh`, `lab.cluster`, `lab.pods`, `lab.copy`, `lab.reset`,
# `experiments.claim`, `kslab.check` 외에):
#
# - 추가 구성 `data/myk8s/iperf3`(`views_ch10.with_iperf3(lab)`가 적용합니다): 디플로이먼트(Deployment)
#   `iperf3-server`(`myk8s-worker`에 파드 하나), 레이블(label) `app=iperf3-client`를 단 클라이언트 디플로이먼트
#   둘(`myk8s-worker2`의 `iperf3-client`, 서버 옆 `myk8s-worker`의 `iperf3-client-same`), 서비스(Service)
#   `iperf3-server`(ClusterIP, 5201 TCP와 UDP)와 `iperf3-server-nodeport`(NodePort 30002)입니다.
#   `views_ch10.places(lab)`는 레이블로 파드를 찾습니다. `.server`, `.same`(서버 옆 클라이언트), `.cross`(다른
#   노드의 클라이언트), `.server_node`, `.cross_node`입니다.
# - `lab.iperf3(client, to, "flags")`: 클라이언트 파드에서 `to`(파드, 서비스, 또는 NodePort이면 `NODE:SERVICE`)로
#   iperf3 테스트 하나를 실행합니다. `BandwidthRun`을 돌려줍니다. `.result`(파싱한 `-J` 보고서,
#   `kslab.iperf3.IperfResult`: `.sum(direction, side)`, `.directions()`, `.streams`, `.intervals`,
#   `.summary_frame()`), `.path`(홉: `.path.hops_text()`), `.command`(파드에서 입력할 명령), `.source`(지금 잰
#   것인지, 어느 기록에서 온 것인지), `.frame()`(합계마다 한 줄, 경로와 함께)입니다.
# - `kslab.iperf3`: `IperfOptions`(데이터로 본 옵션: `.flags()`, `.client_argv(host)`, `.target_bitrate`,
#   `IperfOptions.from_argv(argv)`), `STUDY_TESTS`(스터디의 네 가지 테스트), 방향 `C2S`(client->server)와
#   `S2C`(server->client), `parse(text)`(`iperf3 ... -J` 보고서, 예를 들어 `lab.sh`가 출력한 것을 `IperfResult`로:
#   합계 말고도 `.protocol`, `.port`, `.duration`, `.num_streams`, `.reverse`, `.bidir`), `format_text(result)`(`-J`
#   없이 iperf3가 출력하는 그대로의 보고서)입니다. sim에서 `iperf3 -J`에 대한 `lab.sh`의 `.stderr`는 그 답이 어느
#   기록에서 왔는지 말합니다.
# - `kslab.bandwidth`: `path_to(lab, client, to)`(아무것도 실행하지 않고 경로와 홉만), `compare(lab, [(client,
#   to), ...], flags)`(경로마다 한 줄)입니다.
# - `views_ch10`: `path_targets(places)`(이 장의 네 경로), `udp_rates`, `streams_vs_sum`, `direction_rates`,
#   `study_table`, `figures_source(lab)`(지금 잰 것인지, 기록의 레이블인지), `BandwidthPanel`, `charts_ch10`: 차트입니다.
#
# **숫자는 어디서 오는가.** `netns`에서는 모든 테스트가 파드의 네트워크 네임스페이스 사이에서 실제 iperf3(여기서는
# 3.12)로 지금 실행됩니다. `sim`에서는 잴 것이 없습니다. 숫자는 netns에서 실제로 잰 기록(`data/recorded/iperf3.json`,
# 명령, 커널, iperf3 버전, 날짜, 그때 머신의 부하와 함께)이고, 모든 출력이 그렇다고 말합니다. `kind`에서는 테스트가
# `kubectl exec`로 파드 안에서 실행됩니다. iperf3 실행은 실습 환경을 아무것도 바꾸지 않으므로 `lab.reset()`이
# 필요한 셀은 없습니다(부른다면 `views_ch10.with_iperf3(lab)`로 추가 구성을 다시 적용하세요).

# %%
import kslab
from kslab import bandwidth, charts_ch10, experiments, iperf3, views_ch10
from kslab.iperf3 import C2S, S2C

lab = kslab.Lab(seed=10)  # backend from KSLAB_BACKEND (sim by default); the study's lab from data/myk8s
views_ch10.with_iperf3(lab)  # the chapter's add-on: iperf3-server, two clients, Services iperf3-server and -nodeport
LIVE = not lab.dataplane.exact  # a live cluster (kind): its own pods, pulled and started in their own time
if LIVE and not all(lab.cluster.pod(p).pod_ip for p in lab.pods("app=iperf3-server") + lab.pods("app=iperf3-client")):
    print(f"{lab.backend}: the add-on's pods are not running on this live cluster (yet); the chapter runs on the "
          "study's lab on the simulator, the add-on applied there (run it again once kubectl get pods shows them Running)")
    lab = views_ch10.with_iperf3(kslab.Lab(backend="sim", seed=10))
P = views_ch10.places(lab)  # .server, .same (client beside it), .cross (client on another node), .server_node, .cross_node
PATHS = views_ch10.path_targets(P)  # path kind -> (client, to): same-node, cross-node, clusterip, nodeport
STUDY = views_ch10.SERVICE  # the study's tests: `iperf3 -c iperf3-server ...` in the iperf3-client pod (P.cross)
print(f"backend: {lab.backend}" + (f" (fell back: {lab.fallback})" if lab.fallback else "")
      + f"; figures: {views_ch10.figures_source(lab)}")
print(f"iperf3-server: {P.server} on {P.server_node}; clients: {P.same} (same node), {P.cross} (on {P.cross_node})")

# %% [markdown] lang="en"
# ## 1. iperf3 and its flags (iperf3 명령어)
#
# iperf3 has two ends. The **server** (`-s`) listens on TCP port 5201 (`-p` changes it) and waits; the
# **client** (`-c HOST`) connects to it, a control connection first, then one data connection per
# stream, and the sending side writes as fast as it can for `-t` seconds (10 by default). Both ends
# count; the client prints a line per interval (`-i`, 1 s) and, at the end, the total the **sender**
# sent and the total the **receiver** received. The receiver's line is the one that measures the path.
#
# | flag | meaning | default |
# |---|---|---|
# | `-s` | server mode: listen, serve one test at a time | |
# | `-c HOST` | client mode: connect to HOST (an IP or a name: here the Service's DNS name) | |
# | `-p N` | the server's port, on both ends | 5201 |
# | `-t N` | how many seconds the test sends | 10 |
# | `-u` | UDP instead of TCP (the control connection stays TCP) | TCP |
# | `-b RATE` | the target bitrate per stream (`100M`, `1G`; `0` = unlimited) | **UDP 1 Mbit/s**, TCP unlimited |
# | `-R` | reverse: the **server** sends and the client receives (one direction) | client sends |
# | `--bidir` | both directions at once (iperf3 3.7 and later) | |
# | `-P N` | N parallel streams (connections), reported one by one and as `[SUM]` | 1 |
# | `-J` | one JSON report at the end (what kslab reads) | text |
#
# The study's notes say test 3 is "TCP, bidirectional (`-R`)". That is wrong: `-R` only swaps who
# sends. Both directions at once is `--bidir`. The cell writes the study's four tests as `IperfOptions`,
# prints the command line each runs, and reads the study's test 3 **as written** back with
# `IperfOptions.from_argv`, the way iperf3 itself would read it.

# %% [markdown] lang="ko"
# ## 1. iperf3와 그 옵션 (iperf3 flags)
#
# iperf3에는 두 끝이 있습니다. **서버**(`-s`)는 TCP 포트 5201(`-p`로 바꿉니다)에서 기다리고, **클라이언트**(`-c
# HOST`)가 서버에 연결합니다. 먼저 제어 연결, 다음에 스트림(stream)마다 데이터 연결 하나이고, 보내는 쪽은 `-t`초
# (기본 10초) 동안 할 수 있는 한 빨리 씁니다. 두 끝이 모두 세고, 클라이언트는 구간(`-i`, 1초)마다 한 줄을, 끝에는
# **송신자**(sender)가 보낸 합계와 **수신자**(receiver)가 받은 합계를 출력합니다. 경로를 재는 것은 수신자의 줄입니다.
#
# | 옵션 | 뜻 | 기본값 |
# |---|---|---|
# | `-s` | 서버 모드: 기다렸다가 한 번에 테스트 하나를 처리 | |
# | `-c HOST` | 클라이언트 모드: HOST(IP나 이름, 여기서는 서비스의 DNS 이름)에 연결 | |
# | `-p N` | 서버의 포트, 양쪽 모두 | 5201 |
# | `-t N` | 테스트가 보내는 시간(초) | 10 |
# | `-u` | TCP 대신 UDP(제어 연결은 TCP 그대로) | TCP |
# | `-b RATE` | 스트림마다 목표 비트레이트(`100M`, `1G`, `0` = 제한 없음) | **UDP 1 Mbit/s**, TCP 제한 없음 |
# | `-R` | 역방향(reverse): **서버**가 보내고 클라이언트가 받음(한 방향) | 클라이언트가 보냄 |
# | `--bidir` | 두 방향을 동시에(iperf3 3.7 이상) | |
# | `-P N` | 병렬 스트림(연결) N개, 하나씩 그리고 `[SUM]`으로 보고 | 1 |
# | `-J` | 끝에 JSON 보고서 하나(kslab이 읽는 것) | 텍스트 |
#
# 스터디 노트는 테스트 3을 "TCP, 쌍방향 모드(`-R`)"라고 합니다. 틀렸습니다. `-R`은 누가 보내는지만 바꿉니다.
# 두 방향을 동시에 재는 것은 `--bidir`입니다. 셀은 스터디의 네 테스트를 `IperfOptions`로 쓰고, 각각 실행하는 명령줄을
# 출력하고, 스터디의 테스트 3을 **적힌 그대로** `IperfOptions.from_argv`로 읽어 봅니다. iperf3 자신이 읽듯이요.

# %%
for name, opts in iperf3.STUDY_TESTS.items():
    print(f"{name:12} {opts.flags():14} client: {' '.join(opts.client_argv(STUDY, json=False))}")
print(f"{'server':12} {'':14} server: {' '.join(iperf3.IperfOptions().server_argv(one_off=False, json=False))}")
_, _, as_written = iperf3.IperfOptions.from_argv(["-c", STUDY, "-R", "-t", "5"])  # the study's test 3 as written
_, server, udp_typed = iperf3.IperfOptions.from_argv(["-c", STUDY, "-u", "-R", "-t", "5"])  # the study's test 2
defaults = iperf3.IperfOptions()
print(f"the study's test 3 as written (-R): reverse={as_written.reverse}, bidir={as_written.bidir}")
print(f"target bitrate without -b: UDP {iperf3.STUDY_TESTS['udp-reverse'].target_bitrate:,} bit/s, TCP {defaults.target_bitrate}")
experiments.claim(
    as_written.reverse and not as_written.bidir and iperf3.STUDY_TESTS["bidir"].bidir
    and not iperf3.STUDY_TESTS["bidir"].reverse and udp_typed == iperf3.STUDY_TESTS["udp-reverse"] and not server
    and (defaults.port, defaults.seconds, defaults.target_bitrate) == (5201, 10, None)
    and udp_typed.target_bitrate == 1024 * 1024 and iperf3.STUDY_TESTS["parallel"].parallel == 30,
    "the study's '-R' reads as reverse (one direction), not bidirectional: test 3 needs --bidir; UDP aims at "
    "1,048,576 bit/s without -b, TCP at no limit; port 5201 and 10 s unless -p / -t say otherwise",
    f"the flags read differently: -R -> {as_written}, udp -> {udp_typed}, defaults {defaults}",
)

# %% [markdown] lang="en"
# ## 2. Test 1: TCP on 5201 for 5 seconds
#
# The study's first test, typed in the client pod (`kubectl exec deploy/iperf3-client -- ...`):
# `iperf3 -c iperf3-server -t 5`. The client resolves the Service's name to its ClusterIP, kube-proxy's
# DNAT sends the connection to the server pod on another node. The report's columns:
#
# - `Interval`: seconds since the start; `Transfer`: bytes moved in it (`MBytes`, `GBytes`: powers of 1024);
#   `Bitrate`: that, in bits per second (`Mbits/sec`, `Gbits/sec`: powers of 1000);
# - `Retr`: TCP **retransmits**, segments the sender sent again because they were lost or late;
#   `Cwnd`: the sender's congestion window, how much it may have in flight unacknowledged;
# - the two last lines: what the **sender** sent and what the **receiver** got, over the whole test.
#
# The same test then runs through `lab.iperf3`, which reads iperf3's JSON (`-J`): one row per sum, the
# path's hops beside it, and a chart per interval. (From test 2 on, each test runs once: the study's
# command with `-J` through `lab.sh`, read with `iperf3.parse` as `lab.iperf3` does, its text report
# printed with `iperf3.format_text`, the path's hops from `bandwidth.path_to`. On netns every run takes
# its 5 seconds for real.)

# %% [markdown] lang="ko"
# ## 2. 테스트 1: 5201 포트에서 5초 동안 TCP
#
# 스터디의 첫 테스트를 클라이언트 파드에서 입력합니다(`kubectl exec deploy/iperf3-client -- ...`):
# `iperf3 -c iperf3-server -t 5`. 클라이언트는 서비스 이름을 클러스터 IP로 풀고, kube-proxy의 DNAT가
# 연결을 다른 노드의 서버 파드로 보냅니다. 보고서의 열은 다음과 같습니다.
#
# - `Interval`: 시작부터의 초, `Transfer`: 그 구간에 옮긴 바이트(`MBytes`, `GBytes`: 1024의 거듭제곱),
#   `Bitrate`: 그것을 초당 비트로(`Mbits/sec`, `Gbits/sec`: 1000의 거듭제곱).
# - `Retr`: TCP **재전송**(retransmit), 잃어버렸거나 늦어서 송신자가 다시 보낸 세그먼트 수. `Cwnd`: 송신자의
#   혼잡 윈도(congestion window), 확인 응답 없이 보낼 수 있는 양.
# - 마지막 두 줄: 테스트 전체에서 **송신자**가 보낸 양과 **수신자**가 받은 양.
#
# 같은 테스트를 `lab.iperf3`로 다시 실행합니다. `lab.iperf3`는 iperf3의 JSON(`-J`)을 읽습니다. 합계마다 한 줄,
# 그 옆에 경로의 홉, 그리고 구간마다의 차트입니다. (테스트 2부터는 테스트마다 한 번만 실행합니다. 스터디의 명령에
# `-J`를 붙여 `lab.sh`로 실행하고, `lab.iperf3`가 하듯 `iperf3.parse`로 읽고, 텍스트 보고서는 `iperf3.format_text`로
# 출력하고, 경로의 홉은 `bandwidth.path_to`에서 얻습니다. netns에서는 실행마다 실제로 5초가 걸립니다.)

# %%
said = lab.sh(P.cross, f"iperf3 -c {STUDY} -t 5")
print(f"$ kubectl exec deploy/iperf3-client -- iperf3 -c {STUDY} -t 5\n{said}")
tcp = lab.iperf3(P.cross, STUDY, "-t 5")
print(f"lab.iperf3: {tcp.command}   path {tcp.path.kind}: {tcp.path.hops_text()}   ({tcp.source})")
print(tcp.result.summary_frame().round(1).to_string(index=False))
charts_ch10.interval_figure(tcp.result, title=f"Test 1: {tcp.command}, per second<br><sup>{tcp.source}</sup>").show()
sent, got = tcp.result.sum(C2S, "sender"), tcp.result.sum(C2S, "receiver")
ticks = [i for i in tcp.result.intervals if i.socket is None and not i.omitted]
experiments.claim(
    tcp.result.protocol == "TCP" and tcp.result.port == 5201 and tcp.result.directions() == (C2S,)
    and round(tcp.result.duration) == 5 and len(ticks) >= 5 and 0.9 <= got.bytes / sent.bytes <= 1.0
    and got.bits_per_second > 0 and sent.retransmits is not None and "sender" in str(said) and "receiver" in str(said),
    f"one direction (client->server) on port 5201 for 5 s, a line per second; the receiver got {got.bytes / sent.bytes:.1%} "
    f"of what the sender sent ({sent.retransmits} retransmits)",
    f"test 1 reported something else: {tcp.result.directions()}, {len(ticks)} intervals, {got.bytes} of {sent.bytes} bytes",
)

# %% [markdown] lang="en"
# ## 3. Test 2: UDP, reversed (`-u -R`)
#
# With `-u` the data goes as UDP datagrams: no connection, no acknowledgement, no retransmission. The
# receiver therefore counts what TCP would hide: **lost** datagrams (their sequence numbers never
# arrived; `Lost/Total Datagrams` and a percentage) and **jitter**, how much the gap between arrivals
# varies (ms; iperf3 computes it as RFC 1889's running mean of the transit-time differences).
#
# Two things to predict before you run the test:

# %% [markdown] lang="ko"
# ## 3. 테스트 2: UDP, 역방향 (`-u -R`)
#
# `-u`이면 데이터가 UDP 데이터그램으로 갑니다. 연결도, 확인 응답도, 재전송도 없습니다. 그래서 수신자는 TCP라면
# 숨겼을 것을 셉니다. **손실**(loss)된 데이터그램(순서 번호가 끝내 도착하지 않은 것, `Lost/Total Datagrams`와
# 백분율)과 **지터**(jitter), 곧 도착 간격이 얼마나 흔들리는지(ms, iperf3는 RFC 1889의 방식대로 전송 시간 차이의
# 이동 평균으로 계산합니다)입니다.
#
# 테스트를 실행하기 전에 두 가지를 예측해 보세요.

# %% [markdown] lang="en"
# **Predict.** The study calls `-R` its bidirectional mode. Which direction(s) does the report of
# `iperf3 -c iperf3-server -u -R -t 5` measure?
#
# - (a) client → server only;
# - (b) server → client only;
# - (c) both directions at once.

# %% [markdown] lang="ko"
# **예측.** 스터디는 `-R`을 쌍방향 모드라고 부릅니다. `iperf3 -c iperf3-server -u -R -t 5`의 보고서는 어느 방향을
# 잴까요?
#
# - (a) 클라이언트 → 서버만
# - (b) 서버 → 클라이언트만
# - (c) 두 방향 동시에

# %% [markdown] lang="en"
# *Stuck on an exercise?* `kslab.check.hint("ch10.reverse_direction")` shows its hints one at a time; once you have
# checked an answer of your own and seen every hint, `kslab.check.solution("ch10.reverse_direction")` shows the
# solution. An exercise's name is its check without `kslab.check.`; `kslab progress` (or the progress page in chapter
# 00) shows how far you are.

# %% [markdown] lang="ko"
# *연습 문제가 막혔나요?* `kslab.check.hint("ch10.reverse_direction")`는 힌트를 하나씩 보여 줍니다. 직접 답을 한 번 확인하고 힌트를 모두 본 뒤에는
# `kslab.check.solution("ch10.reverse_direction")`이 풀이를 보여 줍니다. 연습 문제의 이름은 확인 함수에서 `kslab.check.`를 뺀 것입니다. `kslab
# progress`(또는 00장의 진도 페이지)로 어디까지 했는지 볼 수 있습니다.

# %% [markdown] lang="en" hint="ch10.reverse_direction"
# 1. `-R` is iperf3's `--reverse`: it swaps the roles of sender and receiver for the one test stream.
# 2. Reversed, the server sends and the client receives; measuring both directions at once is a different option,
#    `--bidir`.

# %% [markdown] lang="ko" hint="ch10.reverse_direction"
# 1. `-R`은 iperf3의 `--reverse`입니다. 시험 스트림 하나의 송신자와 수신자 역할을 바꿉니다.
# 2. 역방향이면 서버가 보내고 클라이언트가 받습니다. 두 방향을 동시에 재는 것은 다른 옵션, `--bidir`입니다.

# %% tags=["solution"]
# EXERCISE-START
answer = None  # "a", "b" or "c"
# EXERCISE-END
answer = "b"  # -R = --reverse: the server sends, the client receives; both at once is --bidir
kslab.check.ch10.reverse_direction(answer, lab)

# %% [markdown] lang="en"
# **Predict.** No `-b` is given. At what rate, in Mbit/s, does the sending side send the datagrams?
# (A number. Hint: it is not the path's speed.)

# %% [markdown] lang="ko"
# **예측.** `-b`를 주지 않았습니다. 보내는 쪽은 데이터그램을 몇 Mbit/s로 보낼까요? (숫자 하나. 힌트: 경로의
# 속도가 아닙니다.)

# %% [markdown] lang="en" hint="ch10.udp_rate"
# 1. In UDP mode iperf3 does not probe the path: without `-b` it sends at a fixed default target rate, whatever the
#    link could carry.
# 2. That default is 1 Mibit/s, i.e. 1024 x 1024 bit/s; convert it to Mbit/s (divide by 1,000,000).

# %% [markdown] lang="ko" hint="ch10.udp_rate"
# 1. UDP 모드의 iperf3는 경로를 탐색하지 않습니다. `-b`가 없으면 링크가 감당할 수 있는 속도와 상관없이 고정된 기본 목표 속도로 보냅니다.
# 2. 그 기본값은 1 Mibit/s, 즉 1024 x 1024 bit/s입니다. Mbit/s로 바꾸세요(1,000,000으로 나눕니다).

# %% tags=["solution"]
# EXERCISE-START
answer = None  # Mbit/s
# EXERCISE-END
answer = 1.048576  # iperf3's UDP_RATE: 1024 * 1024 bit/s
kslab.check.ch10.udp_rate(answer, lab)

# %% [markdown] lang="en"
# The run, then the same UDP test with `-b 0` (no cap). Without `-b` the sender paces itself to
# 1 Mbit/s, so the figure is iperf3's default, not the path: a UDP test says something about the path
# only with a rate you chose (`-b 0`, or e.g. `-b 1G` to probe a given load). With `-b 0` the sender
# sends as fast as it can, and the receiver's loss shows what the path and the receiving socket could
# not take.

# %% [markdown] lang="ko"
# 실행, 그리고 같은 UDP 테스트를 `-b 0`(제한 없음)으로. `-b`가 없으면 송신자는 스스로 1 Mbit/s에 맞추므로 숫자는
# 경로가 아니라 iperf3의 기본값입니다. UDP 테스트는 고른 속도가 있어야(`-b 0`, 또는 정한 부하를 보려면 예를 들어
# `-b 1G`) 경로에 대해 무언가를 말합니다. `-b 0`이면 송신자는 할 수 있는 한 빨리 보내고, 수신자의 손실은 경로와
# 받는 소켓이 감당하지 못한 몫을 보여 줍니다.

# %%
said = lab.sh(P.cross, f"iperf3 -c {STUDY} -u -R -t 5 -J")  # the study's test 2, its report as JSON (-J)
udp = iperf3.parse(said)
text = iperf3.format_text(udp)  # what the same command prints without -J
print(f"$ kubectl exec deploy/iperf3-client -- iperf3 -c {STUDY} -u -R -t 5\n{said.stderr}{text}")
free = lab.iperf3(P.cross, STUDY, "-u -b 0 -t 5")
rates = {"-u -R (no -b)": views_ch10.udp_rates(udp), "-u -b 0": views_ch10.udp_rates(free.result)}
charts_ch10.udp_figure(rates, title=f"UDP with and without -b<br><sup>{free.source}</sup>").show()
for label, r in rates.items():
    print(f"{label:14} sender {r['sender_Mbit_s']:10,.3f} Mbit/s  receiver {r['receiver_Mbit_s']:10,.3f} Mbit/s  "
          f"lost {r['lost_percent']:.2f}%  jitter {r['jitter_ms']:.3f} ms")
slow, fast = rates["-u -R (no -b)"], rates["-u -b 0"]
rx = udp.sum(S2C, "receiver")
experiments.claim(
    udp.protocol == "UDP" and udp.directions() == (S2C,)
    and abs(slow["receiver_Mbit_s"] / slow["default_Mbit_s"] - 1) <= 0.05
    and rx.lost_percent is not None and rx.jitter_ms is not None and rx.packets and "Lost/Total Datagrams" in text
    and fast["sender_Mbit_s"] >= 50 * slow["sender_Mbit_s"],
    f"-R measured one direction, server->client; without -b UDP ran at {slow['receiver_Mbit_s']:.3f} Mbit/s "
    f"(1.048576 ± 5%), with {rx.lost_percent:.2f}% lost and {rx.jitter_ms:.3f} ms jitter; -b 0 sent "
    f"{fast['sender_Mbit_s'] / slow['sender_Mbit_s']:,.0f} times as fast ({fast['lost_percent']:.0f}% lost)",
    f"UDP behaved otherwise: directions {udp.directions()}, rates {rates}",
)

# %% [markdown] lang="en"
# ## 4. Test 3: both directions at once (`--bidir`, not `-R`)
#
# `--bidir` opens the data streams in both directions at the same time (iperf3 3.7 and later). The text
# tags each line with who sends: `[TX-C]` the client's transmit streams, `[RX-C]` what the client
# receives. In the JSON the client->server totals are `end.sum_sent`/`sum_received` and the
# server->client ones `end.sum_sent_bidir_reverse`/`sum_received_bidir_reverse`; `kslab.iperf3` names them
# by direction, `C2S` and `S2C`. The two directions share the path and the CPU, so each gets less than a
# one-way test would.

# %% [markdown] lang="ko"
# ## 4. 테스트 3: 두 방향 동시에 (`-R`이 아니라 `--bidir`)
#
# `--bidir`는 데이터 스트림을 두 방향으로 동시에 엽니다(iperf3 3.7 이상). 텍스트는 줄마다 누가 보내는지 붙입니다.
# `[TX-C]`는 클라이언트가 보내는 스트림, `[RX-C]`는 클라이언트가 받는 스트림입니다. JSON에서 client->server
# 합계는 `end.sum_sent`/`sum_received`, server->client 합계는 `end.sum_sent_bidir_reverse`/`sum_received_bidir_reverse`이고,
# `kslab.iperf3`는 이것을 방향 `C2S`와 `S2C`로 부릅니다. 두 방향이 경로와 CPU를 나눠 쓰므로 각 방향은 한 방향
# 테스트보다 적게 받습니다.

# %%
said = lab.sh(P.cross, f"iperf3 -c {STUDY} --bidir -t 5 -J")  # the study's test 3, corrected: --bidir
both = iperf3.parse(said)
text = iperf3.format_text(both)
print(f"$ kubectl exec deploy/iperf3-client -- iperf3 -c {STUDY} --bidir -t 5\n{said.stderr}{text}")
print(views_ch10.study_table({"--bidir -t 5": both}).round(1).to_string(index=False))
charts_ch10.interval_figure(both, title=f"Test 3: iperf3 -c {STUDY} --bidir -t 5, per second and direction<br>"
                                        f"<sup>{views_ch10.figures_source(lab)}</sup>").show()
each = views_ch10.direction_rates(both)
experiments.claim(
    both.bidir and both.directions() == (C2S, S2C) and all(v > 0 for v in each.values())
    and "[TX-C]" in text and "[RX-C]" in text,
    f"--bidir measured both directions at once: client->server {each[C2S]:,.0f} and server->client {each[S2C]:,.0f} Mbit/s "
    "(the text tags them [TX-C] and [RX-C])",
    f"--bidir reported {both.directions()}: {each}",
)

# %% [markdown] lang="en"
# ## 5. Test 4: 30 parallel streams (`-P 30`)
#
# `-P 30` opens 30 data connections to the same server and sends on all of them at once. Each has its
# own line per interval (its socket number in `[ ID]`), and a `[SUM]` line adds them up. On a real
# network, parallel streams help when one TCP connection cannot fill the path (a long round trip, a
# small window, flows spread over several links by hashing). Here every stream crosses the same veths on
# the same CPU. The cell shows the `[SUM]` lines (what `| grep SUM` keeps of the text report), then the
# streams one by one.

# %% [markdown] lang="ko"
# ## 5. 테스트 4: 병렬 스트림 30개 (`-P 30`)
#
# `-P 30`은 같은 서버로 데이터 연결 30개를 열고 모두 동시에 보냅니다. 스트림마다 구간별 줄이 따로 있고(`[ ID]`에
# 소켓 번호), `[SUM]` 줄이 그것을 더합니다. 실제 네트워크에서 병렬 스트림은 TCP 연결 하나로 경로를 채울 수 없을 때
# (긴 왕복 시간, 작은 윈도, 해시로 여러 링크에 나뉘는 흐름) 도움이 됩니다. 여기서는 모든 스트림이 같은 CPU 위의 같은
# veth를 지납니다. 셀은 `[SUM]` 줄(텍스트 보고서에서 `| grep SUM`이 남기는 것)을 보여 주고, 다음에 스트림을 하나씩
# 보여 줍니다.

# %%
said = lab.sh(P.cross, f"iperf3 -c {STUDY} -P 30 -t 5 -J")  # the study's test 4
many = iperf3.parse(said)
summed_lines = [line for line in iperf3.format_text(many).splitlines() if "[SUM]" in line]  # what `| grep SUM` keeps
print(f"$ kubectl exec deploy/iperf3-client -- iperf3 -c {STUDY} -P 30 -t 5 | grep SUM\n{said.stderr}" + "\n".join(summed_lines))
n, added, summed = views_ch10.streams_vs_sum(many)
source = views_ch10.figures_source(lab)
charts_ch10.stream_figure(many, title=f"Test 4: -P 30, each stream at the receiver<br><sup>{source}</sup>").show()
charts_ch10.interval_figure(many, per_stream=True, title=f"Test 4: [SUM] and the 30 streams per second<br><sup>{source}</sup>").show()
print(f"{n} streams; their receiver lines add up to {added:,.1f} Mbit/s; the [SUM] line says {summed:,.1f}")
experiments.claim(
    n == 30 and many.num_streams == 30 and abs(added - summed) <= 0.005 * summed and len(summed_lines) >= 7,
    f"-P 30 reported 30 streams, and the [SUM] ({summed:,.0f} Mbit/s) is their sum (within 0.5%); "
    f"`grep SUM` keeps one [SUM] per interval and the sender and receiver totals",
    f"-P 30 reported {n} streams, sum of streams {added:,.1f} vs [SUM] {summed:,.1f}",
)

# %% [markdown] lang="en"
# ## 6. Four paths compared: same node, cross node, ClusterIP, NodePort
#
# The same TCP test on the chapter's four paths (5 seconds per path, on sim the recorded runs; on netns
# 2 seconds per path, to keep the chapter short), each figure with the hops its packets take:
#
# - **same-node**: `iperf3-client-same` to the server pod's IP on the same node: out of the client's veth
#   into the node, routed, into the server's veth;
# - **cross-node**: `iperf3-client` on `myk8s-worker2` to the server pod's IP: routed by its node to the
#   server's node over the node network, then into the server's veth;
# - **clusterip**: the same client to the Service `iperf3-server`: as cross-node, plus kube-proxy's DNAT on
#   the client's node (the first packet walks the rules; conntrack handles the rest);
# - **nodeport**: `mypc` (outside the cluster) to `myk8s-worker2:30002`: DNAT and masquerade on that node,
#   then routed on to the server's node.
#
# The claim is a **ratio**, never an absolute rate: iperf3 over veths measures how fast this machine's
# CPUs copy bytes through the kernel, which depends on the machine and on what else runs. Same-node has
# the fewest hops, so it should not be slower than cross-node; but every path here is CPU-bound, and on
# the course's 2-CPU test machine, measured 14 times (six rounds of 5 s while other jobs ran, load average
# 7-8, and eight of 2 s at load 3), same-node/cross-node came out between 0.75 and 1.52 and
# ClusterIP/cross-node between 0.76 and 1.24. One short sample per path moves by a quarter either way,
# so the claim allows that much: same-node
# at least 0.6 times cross-node, and the ClusterIP path at least 0.6 times the direct one (its extra hop,
# kube-proxy's DNAT, is a conntrack lookup per packet; the rules are walked once per connection).

# %% [markdown] lang="ko"
# ## 6. 네 경로 비교: 같은 노드, 다른 노드, 클러스터 IP, NodePort
#
# 같은 TCP 테스트를 이 장의 네 경로에서 실행하고(경로마다 5초, sim에서는 기록된 실행입니다. netns에서는 장을 짧게
# 하려고 경로마다 2초), 숫자마다 패킷이 지나는 홉을 함께 봅니다.
#
# - **same-node**: `iperf3-client-same`에서 같은 노드의 서버 파드 IP로. 클라이언트의 veth를 나와 노드에서
#   라우팅되고 서버의 veth로 들어갑니다.
# - **cross-node**: `myk8s-worker2`의 `iperf3-client`에서 서버 파드 IP로. 클라이언트의 노드가 노드 네트워크를 거쳐
#   서버의 노드로 라우팅하고, 서버의 veth로 들어갑니다.
# - **clusterip**: 같은 클라이언트에서 서비스 `iperf3-server`로. cross-node에 클라이언트 노드에서의 kube-proxy DNAT가
#   더해집니다(첫 패킷이 규칙을 따라가고, 나머지는 conntrack이 처리합니다).
# - **nodeport**: 클러스터 밖의 `mypc`에서 `myk8s-worker2:30002`로. 그 노드에서 DNAT와 마스커레이드(masquerade)를
#   거쳐 서버의 노드로 라우팅됩니다.
#
# 확인은 절대 속도가 아니라 **비율**입니다. veth 위의 iperf3는 이 머신의 CPU가 커널을 거쳐 바이트를 얼마나 빨리
# 복사하는지를 재고, 그것은 머신과 함께 도는 다른 일에 달려 있습니다. same-node는 홉이 가장 적으므로 cross-node보다
# 느리지 않아야 합니다. 하지만 여기서는 모든 경로가 CPU의 한계에 걸리고, 이 과정의 CPU 2개짜리 테스트 머신에서 다른
# 작업이 도는 동안 열네 번 재었을 때(부하 평균 7-8에서 5초씩 여섯 번, 부하 3에서 2초씩 여덟 번) same-node/cross-node는
# 0.75에서 1.52, ClusterIP/cross-node는 0.76에서 1.24 사이였습니다. 경로마다 짧은 표본 하나는 어느 쪽으로든 4분의 1쯤
# 움직이므로, 확인은 그만큼을 허용합니다. same-node는 cross-node의 0.6배 이상, ClusterIP 경로는 직접 경로의
# 0.6배 이상입니다(더해진 홉인 kube-proxy의 DNAT는 패킷마다 conntrack 조회 한 번이고, 규칙은 연결마다 한 번
# 따라갑니다).

# %%
SAME_VS_CROSS = 0.6  # same-node >= 0.6 x cross-node (measured here under load: 0.75-1.52)
SERVICE_VS_DIRECT = 0.6  # ClusterIP >= 0.6 x the direct cross-node path (measured: 0.76-1.24)
flags = "-t 2" if lab.backend == "netns" else "-t 5"  # netns: 2 s per path keeps the chapter short; sim: the recorded 5 s runs
compared = bandwidth.compare(lab, list(PATHS.values()), flags)  # ratio: each path over the first, same-node
print(compared[["path", "Mbit_s", "ratio", "hops"]].round(2).to_string(index=False))
charts_ch10.comparison_figure(compared, title=f"TCP ({flags}) per path, ratios to same-node<br><sup>{views_ch10.figures_source(lab)}</sup>").show()
ratio = compared.set_index("path")["ratio"]
experiments.claim(
    list(compared["path"]) == list(PATHS) and (compared["Mbit_s"] > 0).all()
    and 1 / ratio["cross-node"] >= SAME_VS_CROSS
    and ratio["clusterip"] / ratio["cross-node"] >= SERVICE_VS_DIRECT
    and "DNAT" in compared.set_index("path")["hops"]["clusterip"]
    and "NAT" not in compared.set_index("path")["hops"]["cross-node"],
    f"same-node ran at {1 / ratio['cross-node']:.2f} x cross-node (>= {SAME_VS_CROSS}); through the ClusterIP "
    f"{ratio['clusterip'] / ratio['cross-node']:.2f} x the direct cross-node path (>= {SERVICE_VS_DIRECT}), "
    "its hops adding kube-proxy's DNAT",
    f"the paths compared otherwise: {compared[['path', 'Mbit_s', 'ratio']].round(2).to_dict('records')}",
)

# %% [markdown] lang="en"
# ## Explore: the bandwidth panel
#
# Pick a test, a path, `-P` and `-t`. The chart shows the run per second (one line per direction), the
# line under it the receiver's rate per direction and the path's hops. On sim every move shows the run
# at once, but only the runs that were recorded exist (the panel's four tests with `-t 5` on every path,
# and `tcp` with `-P 30`): any other setting says it was not recorded. On netns (and kind) press **run**:
# iperf3 runs for real for `-t` seconds. Try: `udp-reverse` on every path (always 1 Mbit/s), `udp -b 0`
# (loss), `tcp` with `-P 30` against `-P 1`; on netns, `bidir` with `-P 4`, or `-t 10`.

# %% [markdown] lang="ko"
# ## 탐색: 대역폭 패널
#
# 테스트, 경로, `-P`, `-t`를 고르세요. 차트는 실행을 초마다(방향마다 선 하나) 보여 주고, 아래 줄은 방향마다
# 수신자의 속도와 경로의 홉을 보여 줍니다. sim에서는 움직일 때마다 바로 실행을 보여 주지만 기록된 실행만 있습니다
# (모든 경로에서 `-t 5`인 패널의 네 테스트, 그리고 `-P 30`인 `tcp`). 다른 설정은 기록되지 않았다고 말합니다.
# netns(와 kind)에서는 **run**을 누르세요. iperf3가 `-t`초 동안 실제로 실행됩니다. 해 볼 것: 모든 경로에서
# `udp-reverse`(언제나 1 Mbit/s), `udp -b 0`(손실), `-P 30`과 `-P 1`의 `tcp`, netns에서는 `-P 4`인 `bidir`이나 `-t 10`.

# %%
panel = views_ch10.BandwidthPanel(lab, test="tcp", path="same-node")
panel

# %% [markdown] lang="en"
# **Exercise (a new case).** `mypc` connects to the NodePort on the **server's own node**,
# `myk8s-worker:30002`. List the hops of that path in order, as `bandwidth.path_to` names their kinds
# (`"veth"`, `"routing"`, `"bridge"`, `"nat"`, `"socket"`). Compare with the `nodeport` row above, which
# entered on `myk8s-worker2`.

# %% [markdown] lang="ko"
# **연습 문제(새로운 경우).** `mypc`가 **서버가 있는 노드**의 NodePort, `myk8s-worker:30002`로 연결합니다. 그 경로의
# 홉을 순서대로, `bandwidth.path_to`가 부르는 종류(`"veth"`, `"routing"`, `"bridge"`, `"nat"`, `"socket"`)로
# 나열하세요. `myk8s-worker2`로 들어온 위의 `nodeport` 줄과 비교해 보세요.

# %% [markdown] lang="en" hint="ch10.path_hops"
# 1. Follow the packet from mypc: it crosses the docker bridge to myk8s-worker, where kube-proxy's rule DNATs it; the
#    server pod runs on that same node, so there is no second node to cross.
# 2. After the DNAT the node routes the packet to the local pod, masquerades it on the way (externalTrafficPolicy:
#    Cluster), and hands it to the pod's veth; compare with the `nodeport` row, which adds a second bridge and
#    routing hop for the second node.

# %% [markdown] lang="ko" hint="ch10.path_hops"
# 1. mypc에서 패킷을 따라가 보세요. 패킷은 도커 브리지를 건너 myk8s-worker에 가고, 거기서 kube-proxy 규칙이 DNAT합니다. 서버 파드가 같은 노드에 있으므로 건너갈 두 번째 노드는
#    없습니다.
# 2. DNAT 뒤에 노드는 패킷을 로컬 파드로 라우팅하고, 가는 길에 마스커레이드하며(externalTrafficPolicy: Cluster), 파드의 veth로 넘깁니다. 두 번째 노드 때문에 브리지와
#    라우팅 홉이 하나씩 더 있는 `nodeport` 행과 비교해 보세요.

# %% tags=["solution"]
# EXERCISE-START
answer = None  # a list of hop kinds, e.g. ["routing", "nat", ...]
# EXERCISE-END
# over the docker bridge to myk8s-worker, DNAT there, routed to the local pod's veth, masqueraded (the
# Service's externalTrafficPolicy is Cluster), into the pod: no second node, so no second bridge or routing
answer = ["bridge", "nat", "routing", "nat", "veth"]
kslab.check.ch10.path_hops(answer, lab, client=views_ch10.EXTERNAL_CLIENT, to=f"{P.server_node}:{views_ch10.NODEPORT_SERVICE}")

# %% [markdown] lang="en"
# ## 7. What the figures mean for a real cluster
#
# Every path in this lab runs on **one machine**: a veth pair is two ends of a queue in the same kernel,
# so "bandwidth" here is how fast the CPUs copy data from one socket to another through the network
# stack. That is why the figures are in Gbit/s, why they move with the machine's load (the recording's
# label gives it), and why the chapter compares ratios. What each setting adds:
#
# - **kind** (the study's cluster): each node is a Docker container on one host; pods have veths into
#   their node's namespace, the nodes share the Docker bridge `kind` (a cross-node packet leaves its node
#   through the node's own veth, crosses the bridge and enters the other node through its veth). Still one
#   kernel, still CPU-bound: the same shape as here.
# - **a real cluster**: NICs and switches with a line rate (1/10/25 Gbit/s...), a path MTU (1500 bytes,
#   or 9000 with jumbo frames), often an overlay that **encapsulates** pod traffic between nodes
#   (VXLAN or Geneve: about 50 bytes of headers per packet, and CPU for the encapsulation unless the NIC
#   offloads it), the CNI's network policy and NAT, the pods' **CPU limits** (a throttled iperf3 measures
#   its quota), and **noisy neighbours** sharing the NICs and the nodes. Cross-node is then a different
#   thing from same-node, and a UDP test at `-b 0` measures loss on real queues.
#
# So: run iperf3 on the cluster you care about, state the flags (`-t`, `-P`, `-b`, direction) with the
# figure, read the receiver's line, run it more than once, and compare paths against each other rather
# than against a number from somewhere else.

# %% [markdown] lang="ko"
# ## 7. 이 숫자가 실제 클러스터에 대해 말하는 것
#
# 이 실습 환경의 모든 경로는 **머신 하나** 위에서 돕니다. veth 쌍은 같은 커널 안에 있는 큐의 두 끝이므로, 여기서
# "대역폭"은 CPU가 네트워크 스택을 거쳐 한 소켓에서 다른 소켓으로 데이터를 얼마나 빨리 복사하는지입니다. 그래서
# 숫자가 Gbit/s이고, 머신의 부하에 따라 움직이고(기록의 레이블이 그 부하를 알려 줍니다), 이 장이 비율을 비교합니다.
# 환경마다 더해지는 것은 다음과 같습니다.
#
# - **kind**(스터디의 클러스터): 노드마다 한 호스트 위의 Docker 컨테이너입니다. 파드는 노드의 네임스페이스로 가는
#   veth를 가지고, 노드들은 Docker 브리지 `kind`를 나눠 씁니다(다른 노드로 가는 패킷은 노드 자신의 veth로 나가
#   브리지를 건너고, 다른 노드의 veth로 들어갑니다). 여전히 커널 하나이고 CPU가 한계입니다. 여기와 같은 모양입니다.
# - **실제 클러스터**: 회선 속도(1/10/25 Gbit/s…)가 있는 NIC과 스위치, 경로 MTU(1500바이트, 점보 프레임이면 9000),
#   노드 사이의 파드 트래픽을 **캡슐화**하는 오버레이(VXLAN이나 Geneve: 패킷마다 헤더 약 50바이트, 그리고 NIC이 대신
#   해 주지 않으면 캡슐화에 드는 CPU), CNI의 네트워크 정책과 NAT, 파드의 **CPU 제한**(CPU limit, 제한에 걸린
#   iperf3는 자기 할당량을 잽니다), NIC과 노드를 나눠 쓰는 **시끄러운 이웃**(noisy neighbour)이 더해집니다. 그러면
#   다른 노드로 가는 경로는 같은 노드 안과 전혀 다른 것이 되고, `-b 0`인 UDP 테스트는 실제 큐에서의 손실을 잽니다.
#
# 그러니 관심 있는 클러스터에서 iperf3를 실행하고, 숫자와 함께 옵션(`-t`, `-P`, `-b`, 방향)을 밝히고, 수신자의 줄을
# 읽고, 여러 번 실행하고, 다른 곳에서 온 숫자가 아니라 경로끼리 비교하세요.

# %%
print(f"this chapter ran on the {lab.backend} backend" + (f"; it fell back: {lab.fallback}" if lab.fallback else "")
      + f"; its figures: {views_ch10.figures_source(lab)}")

# %% [markdown] lang="en"
# ## Summary (요약)
#
# - **iperf3** measures a path's **bandwidth** (대역폭) between a server (`-s`, port 5201, `-p`) and a
#   client (`-c`), for `-t` seconds (10 by default); the **receiver**'s total is the path's figure, the
#   sender's what was offered. TCP adds **retransmits** (재전송); UDP adds **loss** (손실) and **jitter**
#   (지터), and sends at **1 Mbit/s unless `-b`** says otherwise: a UDP test without `-b` measures iperf3's
#   default, not the path.
# - `-R` (**reverse**, 역방향) makes the server send: one direction, server->client. Both directions at once
#   is `--bidir` (쌍방향, iperf3 3.7+), tagged `[TX-C]`/`[RX-C]`; the study's "bidirectional (-R)" is wrong.
#   `-P N` runs N **parallel streams** (병렬 스트림) and adds them up in `[SUM]`.
# - In a lab on one machine every path is CPU-bound: same-node and cross-node, direct or through a
#   Service's DNAT, come out within tens of percent of each other. A real cluster adds NICs, MTU,
#   encapsulation, policy, CPU limits and neighbours: compare paths on the cluster itself, by ratio, with
#   the flags stated.
#
# This is the last chapter of the study's week: chapter 00's glossary lists every term the course used.

# %% [markdown] lang="ko"
# ## 요약 (Summary)
#
# - **iperf3**는 서버(`-s`, 포트 5201, `-p`)와 클라이언트(`-c`) 사이에서 `-t`초(기본 10초) 동안 경로의
#   **대역폭**(bandwidth)을 잽니다. **수신자**의 합계가 경로의 숫자이고, 송신자의 것은 보낸 양입니다. TCP는
#   **재전송**(retransmit)을, UDP는 **손실**(loss)과 **지터**(jitter)를 더하고, UDP는 **`-b`가 없으면 1 Mbit/s로**
#   보냅니다. `-b` 없는 UDP 테스트는 경로가 아니라 iperf3의 기본값을 잽니다.
# - `-R`(**역방향**, reverse)은 서버가 보내게 합니다. 한 방향, server->client입니다. 두 방향을 동시에 재는 것은
#   `--bidir`(쌍방향, iperf3 3.7 이상)이고 `[TX-C]`/`[RX-C]`로 표시됩니다. 스터디의 "쌍방향 모드(-R)"는 틀렸습니다.
#   `-P N`은 **병렬 스트림**(parallel streams) N개를 실행하고 `[SUM]`으로 더합니다.
# - 머신 하나 위의 실습 환경에서는 모든 경로가 CPU의 한계에 걸립니다. 같은 노드든 다른 노드든, 직접이든 서비스의
#   DNAT를 거치든 서로 수십 퍼센트 안에 있습니다. 실제 클러스터는 NIC, MTU, 캡슐화, 정책, CPU 제한, 이웃을
#   더합니다. 클러스터 자체에서, 비율로, 옵션을 밝히고 경로를 비교하세요.
#
# 이 장이 스터디 한 주의 마지막 장입니다. 00장의 용어집에 이 과정이 쓴 모든 용어가 있습니다.
