"""Parse time of ClassAds, pyblahp's library against HTCondor's own (classad2).

    python bench/classad_parse.py [--rounds N]

Measures a realistic ~2 KB BLAH_JOB_SUBMIT ad (the spec's Hosted-CE job with a proxy, VO
attributes and a CERequirements expression) and a 500-attribute ad of mixed values, prints the
median time per parse for each library and the ratio. The goal for the submit ad is < 1 ms.
"""

import argparse
import os
import statistics
import sys
import time
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src"))

from blahp.classad import parse_ad  # noqa: E402

SANDBOX = "/home/osg01/bosco/sandbox/519d/519d2aa2/ce.example.org_9619_ce.example.org_1234.0_1700000000"
SUBMIT_AD = "[ " + "; ".join([
    'Arguments = "-v std -name gfactory_instance -entry OSG_US_EXAMPLE -clientname osg-frontend -slotslayout fixed"',
    'Environment = "GLIDEIN_Site=EXAMPLE CONDORCE_COLLECTOR_HOST=ce.example.org:9619 GLIDEIN_Factory=OSG"',
    'In = "/dev/null"', 'Out = "_condor_stdout"', 'Err = "_condor_stderr"',
    'TransferInput = "idtoken,glidein_config,condor_platform_select.sh"',
    'Iwd = "%s"' % SANDBOX,
    'Cmd = "%s/glidein_startup.sh"' % SANDBOX,
    'x509userproxy = "%s/x509up_u12345"' % SANDBOX,
    'x509UserProxySubject = "/DC=org/DC=cilogon/C=US/O=Example University/CN=Pilot User A12345"',
    'x509UserProxyFQAN = "/DC=org/DC=cilogon/C=US/O=Example University/CN=Pilot User A12345,/osg/Role=pilot/Capability=NULL"',
    'x509UserProxyVOName = "osg"', 'VirtualOrganisation = "osg"',
    'GridResource = "batch slurm osg01@login.cluster.example.edu"',
    'RequestMemory = 2000', 'Queue = "compute"', 'BatchRuntime = 172800', 'BatchProject = "osg.project"',
    'BatchExtraSubmitArgs = "--qos=normal --constraint=haswell"',
    'SMPGranularity = 8', 'NodeNumber = 8', 'HostNumber = 1', 'WholeNodes = false', 'StageCmd = true',
    'CERequirements = maxWallTime == 2880 && maxMemory == 2000 && queue == "compute" && xcount == 8 && CondorCE == 1',
    'JobDirectory = "home_bl_ce.example.org_9619_ce.example.org_1234.0_1700000000"',
    'ClientJobId = "ce.example.org#1234.0#1700000000"',
    'TransferOutput = ""', 'GPUNumber = 0', 'Owner = "osg01"', 'QDate = 1700000000',
    'ClusterId = 1234', 'ProcId = 0', 'Rank = 0.0', 'Requirements = true',
    'OnExitRemove = true', 'JobPrio = 0', 'NiceUser = false',
    'GlobalJobId = "ce.example.org#1234.0#1700000000"',
    'SubmitterGlobalJobId = "submit.example.org#98765.0#1699999000"',
    'Email = "osg01@ce.example.org"', 'JobUniverse = 9', 'MaxHosts = 1', 'MinHosts = 1',
    'RequestDisk = 4000000', 'DiskUsage = 1', 'ImageSize = 1', 'JobLeaseDuration = 2400',
    'gridtype = "slurm"',
]) + " ]"


def _big_ad(n=500):
    kinds = [
        lambda i: 'Attr%d = %d' % (i, i * 7919),
        lambda i: 'Attr%d = "value number %d with some text"' % (i, i),
        lambda i: 'Attr%d = %d.5' % (i, i),
        lambda i: 'Attr%d = Attr%d + 1' % (i, i - 1),
        lambda i: 'Attr%d = Attr%d =?= undefined && Memory >= %d' % (i, i - 2, i),
        lambda i: 'Attr%d = { "a", "b", %d }' % (i, i),
        lambda i: 'Attr%d = strcat("x", string(Attr%d))' % (i, i - 3),
    ]
    return "[ " + "; ".join(kinds[i % len(kinds)](i) for i in range(n)) + " ]"


def median_seconds(fn, text, rounds):
    for _ in range(5):
        fn(text)
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn(text)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import classad2
        oracle = classad2.ClassAd
    except ImportError:
        oracle = None
    print("python %s" % sys.version.split()[0])
    for label, text in (("submit ad", SUBMIT_AD), ("500-attribute ad", _big_ad())):
        ours = median_seconds(parse_ad, text, args.rounds)
        line = "%-17s %6d bytes  pyblahp %8.3f ms" % (label, len(text), ours * 1e3)
        if oracle is not None:
            theirs = median_seconds(oracle, text, args.rounds)
            line += "  classad2 %8.3f ms  ratio %5.1fx" % (theirs * 1e3, ours / theirs)
        print(line)


if __name__ == "__main__":
    main()
