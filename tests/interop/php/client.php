<?php
// php client.php PORTS MODE [ARGS...]   PORTS: comma-separated; one line of output per result.
$ports = explode(',', $argv[1]);
$mode = $argv[2];
$c = new GearmanClient();
// addServer() connects at once to set the exceptions option; with several servers
// (one possibly down, for the failover test) leave that to the first request.
foreach ($ports as $p) { $c->addServer('127.0.0.1', (int)$p, count($ports) == 1); }
$c->setTimeout(20000);
function out($s) { echo $s, "\n"; }
switch ($mode) {
    case 'do':  // do FUNC PRIORITY WORKLOAD
        [, , , $func, $prio, $data] = $argv;
        $r = match ($prio) { 'high' => $c->doHigh($func, $data), 'low' => $c->doLow($func, $data),
                             default => $c->doNormal($func, $data) };
        out($c->returnCode() == GEARMAN_SUCCESS ? "ok $r" : "error " . $c->returnCode());
        break;
    case 'background':  // background FUNC WORKLOAD -> handle, then status
        [, , , $func, $data] = $argv;
        $h = $c->doBackground($func, $data);
        out($h);
        out(json_encode($c->jobStatus($h)));
        break;
    case 'status':  // status HANDLE
        out(json_encode($c->jobStatus($argv[3])));
        break;
    case 'tasks':  // tasks FUNC N: N tasks with every callback
        [, , , $func, $n] = $argv;
        $c->setStatusCallback(function ($t) { out("status {$t->taskNumerator()}/{$t->taskDenominator()}"); });
        $c->setDataCallback(function ($t) { out("data " . $t->data()); });
        $c->setWarningCallback(function ($t) { out("warning " . $t->data()); });
        $c->setCompleteCallback(function ($t) { out("complete " . $t->data()); });
        $c->setExceptionCallback(function ($t) { out("exception " . $t->data()); });
        $c->setFailCallback(function ($t) { out("fail"); });
        for ($i = 0; $i < (int)$n; $i++) { $c->addTask($func, "t$i"); }
        $ok = $c->runTasks();
        out($ok ? "run ok" : "run error " . $c->error());
        break;
    case 'mixed':  // mixed FG BG N: N background and N foreground tasks, alternating, in one run
        [, , , $fg, $bg, $n] = $argv;
        $c->setCreatedCallback(function ($t) { out("created {$t->jobHandle()} {$t->unique()}"); });
        $c->setCompleteCallback(function ($t) { out("complete {$t->unique()} {$t->data()}"); });
        for ($i = 0; $i < (int)$n; $i++) {
            $c->addTaskBackground($bg, "b$i", null, "b$i");
            $c->addTask($fg, "f$i", null, "f$i");
        }
        $ok = $c->runTasks();
        out($ok ? "run ok" : "run error " . $c->error());
        break;
    case 'big':  // big FUNC: 1 MiB with every byte value
        $data = str_repeat(implode('', array_map('chr', range(0, 255))), 4096);
        $r = $c->doNormal($argv[3], $data);
        out($r === $data ? "same" : "different " . strlen($r));
        break;
}
